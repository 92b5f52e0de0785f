"""Saved models cannot run code: hostile model configs in checkpoints and export folders are
refused before anything is built, by vidgen.load and by every command that loads one; each
attack would leave a sentinel file if it ran. Also non-finite weights, and the weights-only
export (safetensors + JSON) that is the format to share models in."""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import hydra
import pytest
import safetensors.torch
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import vidgen
from vidgen.cli import compare as compare_cli
from vidgen.cli import rollout as rollout_cli
from vidgen.cli.export import export
from vidgen.cli.train import CONFIG_DIR, load_weights
from vidgen.errors import VidgenError
from vidgen.loading import CONFIG_FILE, WEIGHTS_FILE, SavedModel, check_config, save_export
from vidgen.tasks import PredNetTask

TINY_PREDNET = {
    "_target_": "vidgen.tasks.PredNetTask",
    "net": {
        "_target_": "vidgen.models.PredNet",
        "stack_sizes": [3, 4, 8],
        "r_stack_sizes": [3, 4, 8],
        "channels_last": True,
    },
    "layer_loss_weights": [1.0, 0.0, 0.0],
    "eval_context": 1,
    "eval_horizon": 4,
    "next_frame_eval": True,
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.001},
    "scheduler": {
        "_target_": "torch.optim.lr_scheduler.MultiStepLR",
        "_partial_": True,
        "milestones": [4],
    },
}


class WritesSentinel:
    """Pickled, it calls Path.write_text on load: the payload a full unpickle would run."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return Path.write_text, (self.sentinel, "ran")


def write_checkpoint(path: Path, config: dict, state_dict: dict | None = None) -> Path:
    """What vidgen-train writes: Lightning's dict, the task adding its config on save."""
    task = hydra.utils.instantiate(TINY_PREDNET)
    task.config = config
    checkpoint = {"state_dict": task.state_dict() if state_dict is None else state_dict}
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@dataclass
class Payload:
    """Files an attack uses: the sentinel it would write, a pickle that writes it when fully
    unpickled, and someone else's file to copy."""

    sentinel: Path
    evil: Path
    foreign: Path


@pytest.fixture
def payload(tmp_path: Path) -> Payload:
    found = Payload(tmp_path / "sentinel", tmp_path / "evil.pt", tmp_path / "foreign.txt")
    torch.save(WritesSentinel(found.sentinel), found.evil)
    found.foreign.write_text("someone else's file")
    return found


def inside(where: str, value: object) -> dict:
    """The tiny PredNet config with ``value`` at ``where``."""
    return {**copy.deepcopy(TINY_PREDNET), where: value}


def attacks(p: Payload) -> dict[str, dict]:
    """Model configs that each write ``p.sentinel`` when Hydra instantiates them."""
    unpickle = {"f": str(p.evil), "weights_only": False}
    deep = copy.deepcopy(TINY_PREDNET)
    deep["net"]["stack_sizes"] = [3, [4, {"_target_": "torch.load", **unpickle}]]
    path = {"_target_": "pathlib.Path", "_args_": [str(p.sentinel)]}
    write_text = {"_target_": "pathlib.Path.write_text", "_args_": [path, "ran"]}
    adam = {"_target_": "torch.optim.Adam", "_partial_": True}
    return {
        "write_text": inside("net", write_text),
        "open": inside("net", {"_target_": "builtins.open", "_args_": [str(p.sentinel), "w"]}),
        "copyfile": {"_target_": "shutil.copyfile", "src": str(p.foreign), "dst": str(p.sentinel)},
        "torch_load_deep_in_a_list": deep,
        "args_smuggled_into_an_optimizer": inside("optimizer", {**adam, "_args_": [write_text]}),
        "reexport_in_vidgen_loading": inside(
            "scheduler", {"_target_": "vidgen.loading.torch.load", **unpickle}
        ),
        "reexport_in_a_task_module": inside(
            "net", {"_target_": "vidgen.tasks.prednet.torch.load", **unpickle}
        ),
    }


def refused_shapes(p: Payload) -> dict[str, object]:
    """Configs that break a rule of the check without (in this Hydra) running code."""
    nested: object = 1.0
    for _ in range(40):
        nested = [nested]
    adam = TINY_PREDNET["optimizer"]
    unpickle = {"f": str(p.evil), "weights_only": False}
    return {
        "classmethod_of_an_allowed_class": inside(
            "net",
            {
                "_target_": "vidgen.tasks.PredNetTask.load_from_checkpoint",
                "checkpoint_path": str(p.evil),
            },
        ),
        "dunder_path_through_an_allowed_class": inside(
            "net",
            {
                "_target_": "vidgen.tasks.PredNetTask.__init__.__globals__.torch.load",
                **unpickle,
            },
        ),
        "interpolation": inside("net", "${oc.decode:'{_target_: builtins.open}'}"),
        "environment_interpolation": inside("eval_horizon", "${oc.env:HOME}"),
        "optimizer_not_partial": inside("optimizer", {"_target_": "torch.optim.Adam"}),
        "partial_not_a_bool": inside("optimizer", {**adam, "_partial_": "yes"}),
        "recursive_not_a_bool": inside("optimizer", {**adam, "_recursive_": {"a": 1}}),
        "convert_unknown": inside("optimizer", {**adam, "_convert_": "everything"}),
        "args_not_a_list": inside("optimizer", {**adam, "_args_": "abc"}),
        "unknown_hydra_key": inside("optimizer", {**adam, "_set_flags_": True}),
        "target_not_a_name": inside("net", {"_target_": ["builtins", "open"]}),
        "tensor_value": inside("eval_horizon", torch.tensor(4)),
        "too_deep": inside("layer_loss_weights", nested),
        "task_as_a_partial": {**TINY_PREDNET, "_partial_": True},
        "module_instead_of_a_task": TINY_PREDNET["net"],
    }


NOWHERE = Payload(Path("s"), Path("e"), Path("f"))
ATTACKS, REFUSED_SHAPES = list(attacks(NOWHERE)), list(refused_shapes(NOWHERE))


@pytest.fixture(scope="module")
def legit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("legit") / "tiny.ckpt", TINY_PREDNET)


def write_export(folder: Path, config: object, state_dict: dict) -> Path:
    """An export folder by hand (vidgen-export itself refuses hostile configs)."""
    folder.mkdir()
    safetensors.torch.save_file(state_dict, folder / WEIGHTS_FILE)
    described = {"format": "vidgen-weights", "format_version": 1, "model": config}
    (folder / CONFIG_FILE).write_text(json.dumps(described))
    return folder


def assert_refused(path: Path, match: str) -> None:
    with pytest.raises(VidgenError, match=match) as refused:
        vidgen.load(path)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", ATTACKS)
def test_each_attack_runs_code_when_instantiated_unchecked(payload, name):
    """The control: without the check, Hydra really does write the sentinel."""
    with contextlib.suppress(Exception):  # the payload runs before the model fails to build
        hydra.utils.instantiate(attacks(payload)[name])
    assert payload.sentinel.exists()


@pytest.mark.parametrize("name", ATTACKS)
def test_load_refuses_every_attack_in_a_checkpoint_or_export(tmp_path, payload, legit, name):
    config = attacks(payload)[name]
    ckpt = write_checkpoint(tmp_path / "attack.ckpt", config)
    assert_refused(ckpt, r"^\S*attack.ckpt is refused: model\S*\._target_ names '")
    state_dict = torch.load(legit, weights_only=True)["state_dict"]
    folder = write_export(tmp_path / "attack", config, state_dict)
    assert_refused(folder, r"^\S*attack is refused: model\S*\._target_ names '")
    assert not payload.sentinel.exists()


@pytest.mark.parametrize("name", REFUSED_SHAPES)
def test_load_refuses_configs_outside_the_rules(tmp_path, payload, name):
    ckpt = write_checkpoint(tmp_path / "odd.ckpt", refused_shapes(payload)[name])
    assert_refused(ckpt, r"odd.ckpt is refused: model")
    assert not payload.sentinel.exists()


SCRIPTS = Path(sys.executable).parent
COMMAND_ATTACKS = {
    "vidgen-rollout": ("write_text", ["ckpt={}", "out=rollout.mp4"]),
    "vidgen-compare": ("args_smuggled_into_an_optimizer", ["ckpts=[{}]", "out=report"]),
    "vidgen-plan": ("reexport_in_a_task_module", ["ckpt={}", "--target", "300,120"]),
    "vidgen-export": ("torch_load_deep_in_a_list", ["ckpt={}", "out=shared"]),
}


@pytest.mark.parametrize("command", COMMAND_ATTACKS)
def test_commands_refuse_in_one_line_and_create_nothing(tmp_path, payload, command):
    name, args = COMMAND_ATTACKS[command]
    ckpt = write_checkpoint(tmp_path / "attack.ckpt", attacks(payload)[name])
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run(
        [str(SCRIPTS / command), *(a.format(ckpt) for a in args)],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "attack.ckpt is refused" in run.stderr
    assert not payload.sentinel.exists() and list(work.iterdir()) == []


def test_a_legit_checkpoint_loads_and_rolls_out(legit):
    model = vidgen.load(legit)
    assert isinstance(model, PredNetTask) and model.config == TINY_PREDNET
    saved = torch.load(legit, weights_only=True)["state_dict"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    future = model.rollout(torch.rand(2, 3, 3, 16, 16), horizon=5)
    assert future.shape == (2, 5, 3, 16, 16) and future.isfinite().all()


def compose_command(name: str, overrides: list[str]):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def test_every_shipped_model_config_passes_the_check():
    """The allow-list covers what vidgen-train stores for each model and experiment."""
    choices = [f"model={p.stem}" for p in (CONFIG_DIR / "model").glob("*.yaml")]
    choices += [f"experiment={p.stem}" for p in (CONFIG_DIR / "experiment").glob("*.yaml")]
    for choice in choices:
        config = OmegaConf.to_container(compose_command("train", [choice]).model, resolve=True)
        assert check_config(config, Path(choice)) == config, choice


def test_a_weights_file_named_in_the_config_is_not_read():
    """The saved weights replace `pretrained` anyway, so its path is cleared, not followed."""
    config = inside("net", {**TINY_PREDNET["net"], "pretrained": "/etc/passwd"})
    assert check_config(config, Path("x.ckpt"))["net"]["pretrained"] is None


def test_non_finite_weights_are_refused_by_load_rollout_compare_and_export(tmp_path, legit):
    state_dict = torch.load(legit, weights_only=True)["state_dict"]
    name = next(k for k, v in state_dict.items() if v.is_floating_point())
    state_dict[name] = state_dict[name].clone().fill_(float("nan"))
    diverged = write_checkpoint(tmp_path / "diverged.ckpt", TINY_PREDNET, state_dict)
    assert_refused(diverged, rf"diverged.ckpt holds non-finite weights \({name} has NaN")
    state_dict[name].fill_(float("inf"))
    folder = write_export(tmp_path / "diverged_export", TINY_PREDNET, state_dict)
    assert_refused(folder, "diverged_export holds non-finite weights")
    calls = {
        rollout_cli.render_rollout: ("rollout", [f"ckpt={diverged}", f"out={tmp_path}/r.mp4"]),
        compare_cli.compare: ("compare", [f"ckpts=[{diverged}]", f"out={tmp_path}/report"]),
        export: ("export", [f"ckpt={diverged}", f"out={tmp_path}/shared"]),
    }
    for run, (command, overrides) in calls.items():
        with pytest.raises(VidgenError, match="holds non-finite weights"):
            run(compose_command(command, overrides))
    assert {p.name for p in tmp_path.iterdir()} == {"diverged.ckpt", "diverged_export"}


def test_export_loads_back_to_identical_rollouts(tmp_path, legit, tiny_dataset):
    out = export(compose_command("export", [f"ckpt={legit}", f"out={tmp_path}/shared"]))
    assert {p.name for p in out.iterdir()} == {WEIGHTS_FILE, CONFIG_FILE}
    described = json.loads((out / CONFIG_FILE).read_text())
    assert described["format"] == "vidgen-weights" and described["model"] == TINY_PREDNET
    assert described["vidgen_version"] == vidgen.__version__
    context = torch.rand(2, 3, 3, 16, 16)
    from_checkpoint = vidgen.load(legit)
    expected, expected_state = from_checkpoint.rollout(context, 6), from_checkpoint.state_dict()
    assert torch.equal(vidgen.load(out).rollout(context, 6), expected)
    task = hydra.utils.instantiate(TINY_PREDNET)  # fine-tuning starts from an export too
    load_weights(task, out)
    assert all(torch.equal(v, expected_state[k]) for k, v in task.state_dict().items())
    video = tmp_path / "rollout.mp4"  # the commands take the folder wherever a ckpt goes
    rollout_cli.render_rollout(compose_command("rollout", [
        f"ckpt={out}", "data=folder", f"data.root={tiny_dataset}", f"out={video}", "clips=2",
        "context=3", "horizon=4"]))  # fmt: skip
    assert video.is_file()


def test_export_replaces_only_an_earlier_export_and_only_when_forced(tmp_path, legit):
    out = tmp_path / "shared"
    args = [f"ckpt={legit}", f"out={out}"]
    export(compose_command("export", args))
    with pytest.raises(VidgenError, match="already holds files; pass force=true"):
        export(compose_command("export", args))
    before = (out / WEIGHTS_FILE).stat().st_ino
    export(compose_command("export", [*args, "force=true"]))
    assert (out / WEIGHTS_FILE).stat().st_ino != before
    assert {p.name for p in tmp_path.iterdir()} == {"shared"}  # no staging folder left behind
    (out / "notes.txt").write_text("mine")
    with pytest.raises(VidgenError, match="holds files other than an export"):
        export(compose_command("export", [*args, "force=true"]))
    assert (out / "notes.txt").read_text() == "mine"


def test_export_stores_shared_and_strided_tensors():
    base = torch.arange(12.0).reshape(3, 4)
    state_dict = {"tied": base, "tied_again": base, "transposed": base.t(), "column": base[:, 1]}
    with tempfile.TemporaryDirectory() as folder:
        save_export(SavedModel(TINY_PREDNET, state_dict), Path(folder))
        stored = safetensors.torch.load_file(Path(folder) / WEIGHTS_FILE)
    assert stored.keys() == state_dict.keys()
    assert all(torch.equal(stored[k], v) for k, v in state_dict.items())


def test_a_config_naming_a_huge_model_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """Small weights, a config asking for a 10^12-parameter PredNet: shapes are compared on
    the meta device, so nothing that size is ever allocated."""
    huge = copy.deepcopy(TINY_PREDNET)
    huge["net"]["stack_sizes"] = huge["net"]["r_stack_sizes"] = [3, 1_000_000, 8]
    path = write_checkpoint(tmp_path / "huge.ckpt", huge)
    real_empty = torch.empty

    def bounded_empty(*shape, **kwargs):
        tensor = real_empty(*shape, **kwargs)
        assert tensor.is_meta or tensor.numel() < 10**8, "allocated the forged model"
        return tensor

    monkeypatch.setattr(torch, "empty", bounded_empty)
    with pytest.raises(VidgenError, match="holds weights that do not fit its own model config"):
        vidgen.load(path)
