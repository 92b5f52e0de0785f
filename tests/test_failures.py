"""Failures that lose nothing and say one line: diverging training, bad settings and
checkpoints, outputs that exist or cannot be written. Commands run as a user runs them,
through the installed console scripts; each refusal is exit code 2 and one ``error:`` line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_train
from data_prep.synthetic import generate_dataset
from vidgen.cli.train import (
    FAILED,
    check_trainer_settings,
    instantiate_group,
    resolve_checkpoint,
    train,
)
from vidgen.errors import VidgenError
from vidgen.tasks.callbacks import StopOnNonFinite, TrainingDiverged

TINY_PREDNET = ["model.net.stack_sizes=[3,8,16,32]", "model.net.r_stack_sizes=[3,8,16,32]"]
TINY_VGAN = ["experiment=vgan_bouncing", "data.length=8", "model.generator.frames=8",
             "model.generator.size=32", "model.generator.channels=4",
             "model.discriminator.channels=4"]  # fmt: skip


def command(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run an installed console script in ``cwd``, with data and logs under it."""
    env = {**os.environ, "VIDGEN_ROOT": str(cwd), "OMP_NUM_THREADS": "1"}
    script = Path(sys.executable).parent / name
    return subprocess.run(
        [str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def refused(result: subprocess.CompletedProcess, *phrases: str) -> str:
    """Exit code 2 and a single stderr line, ``error: ...`` with every phrase in it."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    for phrase in phrases:
        assert phrase in result.stderr
    assert "weights_only" not in result.stderr
    return result.stderr.strip()


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def write_checkpoint(overrides: list[str], path: Path) -> Path:
    """A vidgen checkpoint of a freshly built model, as vidgen-train stores it."""
    cfg = compose_train(overrides, path.parent / "compose")
    task = hydra.utils.instantiate(cfg.model)
    config = OmegaConf.to_container(cfg.model, resolve=True)
    torch.save({"state_dict": task.state_dict(), "vidgen": {"model": config}}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> SimpleNamespace:
    """A tiny PredNet, a tiny VGAN (another model family), a text file and a truncated copy."""
    folder = tmp_path_factory.mktemp("checkpoints")
    prednet = write_checkpoint(TINY_PREDNET, folder / "prednet.ckpt")
    truncated = folder / "truncated.ckpt"
    truncated.write_bytes(prednet.read_bytes()[: prednet.stat().st_size // 2])
    text = folder / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    vgan = write_checkpoint(TINY_VGAN, folder / "vgan.ckpt")
    return SimpleNamespace(prednet=prednet, truncated=truncated, text=text, vgan=vgan)


@pytest.fixture
def train_args(tiny_dataset) -> list[str]:
    return [f"data={tiny_dataset}", "data.num_workers=0", "data.batch_size=2",
            "data.samples_per_epoch=4", "data.val_windows=2", *TINY_PREDNET,
            "trainer.max_epochs=3", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]  # fmt: skip


def only_run_folder(root: Path) -> Path:
    (run,) = [p.parent for p in (root / "logs").rglob(FAILED)]
    return run


def test_diverging_training_stops_in_one_line_and_writes_no_nan(tmp_path, train_args):
    # Lightning's own save on an exception is on, and still finds only finite weights.
    diverging = ["model.optimizer.lr=1e30", "+callbacks.model_checkpoint.save_on_exception=true"]
    result = command("vidgen-train", *train_args, *diverging, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0])
    assert errors[0].startswith("error: training stopped at step 2: train/loss is nan")
    assert "model.optimizer.lr" in errors[0]
    run = only_run_folder(tmp_path)
    assert (run / FAILED).read_text().strip() == errors[0].removeprefix("error: ")
    saved = sorted(run.rglob("*.ckpt"))
    assert saved, "the on-exception save should have run"
    for path in saved:
        weights = torch.load(path, weights_only=True)["state_dict"].values()
        assert all(torch.isfinite(w).all() for w in weights if w.is_floating_point())
    # That run kept a last.ckpt, but it failed: resuming the newest run does not pick it.
    resumed = command("vidgen-train", *train_args, "ckpt_path=last", cwd=tmp_path)
    refused(resumed, "found no last.ckpt of a run that did not fail")


def test_manual_optimization_is_guarded_too(tmp_path, tiny_overrides):
    """VGAN steps its two optimizers itself; a NaN gradient still stops it before a step."""
    cfg = compose_train([*TINY_VGAN, *tiny_overrides, "model.optimizer.lr=1e30"], tmp_path)
    with pytest.raises(TrainingDiverged, match=r"^training stopped at step \d+: the gradient"):
        train(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))
    assert (tmp_path / FAILED).read_text().startswith("training stopped at step")


def test_checkpoint_writes_refuse_non_finite_weights():
    trainer = SimpleNamespace(fit_loop=SimpleNamespace(total_batch_idx=6))
    module = SimpleNamespace(automatic_optimization=False)
    weights = {"net.a": torch.ones(3), "net.b": torch.tensor([1.0, float("inf")]),
               "net.c": torch.tensor([float("nan")]), "steps": torch.tensor([3])}  # fmt: skip
    with pytest.raises(TrainingDiverged) as refusal:
        StopOnNonFinite().on_save_checkpoint(trainer, module, {"state_dict": weights})
    assert str(refusal.value) == (
        "training stopped at step 7: the weight net.b is inf, so no checkpoint was written; "
        "lower the learning rate (model.optimizer.lr)."
    )
    del weights["net.b"], weights["net.c"]
    StopOnNonFinite().on_save_checkpoint(trainer, module, {"state_dict": weights})


def test_resuming_the_newest_run_skips_failed_ones(tmp_path):
    runs = tmp_path / "logs" / "demo"
    for name, age in (("older", 100), ("failed", 10)):
        last = runs / name / "checkpoints" / "last.ckpt"
        last.parent.mkdir(parents=True)
        last.write_bytes(b"")
        os.utime(last, (1e9 - age, 1e9 - age))
    (runs / "failed" / FAILED).write_text("training stopped at step 3: train/loss is nan\n")
    cfg = OmegaConf.create(
        {"ckpt_path": "last", "task_name": "demo", "paths": {"log_dir": str(tmp_path / "logs")}}
    )
    assert resolve_checkpoint(cfg) == str(runs / "older" / "checkpoints" / "last.ckpt")


def test_trainer_values_of_the_wrong_type_are_named():
    settings = OmegaConf.create({"_target_": "pytorch_lightning.Trainer", "max_epochs": 5,
                                 "devices": [0, 1], "precision": "16-mixed",
                                 "gradient_clip_val": 1, "max_time": None})  # fmt: skip
    check_trainer_settings(settings)
    for key, value, expected in (
        ("max_epochs", "abc", "trainer.max_epochs='abc' is not valid; set an integer or null."),
        ("max_epochs", True, "trainer.max_epochs=True is not valid"),
        (
            "gradient_clip_val",
            "big",
            "trainer.gradient_clip_val='big' is not valid; set a number or null.",
        ),
        ("precision", 17, "set 64 or 32 or 16 or"),
    ):
        with pytest.raises(VidgenError) as refusal:
            check_trainer_settings(OmegaConf.merge(settings, {key: value}))
        assert expected in str(refusal.value)


@pytest.mark.parametrize(
    ("override", "phrases"),
    [
        ("trainer.max_epochs=abc", ["trainer.max_epochs='abc' is not valid"]),
        ("model.optimizer.lr=-1", ["model.optimizer", "Invalid learning rate: -1"]),
        pytest.param(
            "trainer.max_epoch=3",
            ["Could not override 'trainer.max_epoch'"],
            marks=pytest.mark.slow,
        ),
    ],
)
def test_settings_that_cannot_work_are_one_line(tmp_path, train_args, override, phrases):
    refused(command("vidgen-train", *train_args, override, cwd=tmp_path), *phrases)
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("setting", "which", "phrase"),
    [
        ("ckpt_path", "text", "is not a vidgen checkpoint (not a complete PyTorch file)"),
        ("init_weights", "vgan", "holds a VGANTask whose weights do not fit this PredNetTask"),
        pytest.param("init_weights", "truncated", "not a complete PyTorch file",
                     marks=pytest.mark.slow),
        pytest.param("ckpt_path", "vgan", "holds a VGANTask whose weights do not fit",
                     marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_bad_checkpoints_are_one_line(tmp_path, train_args, checkpoints, setting, which, phrase):
    path = getattr(checkpoints, which)
    error = refused(command("vidgen-train", *train_args, f"{setting}={path}", cwd=tmp_path))
    assert phrase in error and str(path) in error
    assert not list(tmp_path.rglob("*.ckpt"))
    assert (only_run_folder(tmp_path) / FAILED).read_text().strip() in error


def test_rollout_never_replaces_a_file_unasked(tmp_path, checkpoints):
    out = tmp_path / "rollout.mp4"
    out.write_text("an earlier rollout")
    before = files_under(tmp_path)
    result = command("vidgen-rollout", f"ckpt={checkpoints.prednet}", f"out={out}", cwd=tmp_path)
    refused(result, f"out={out} already exists; pass force=true")
    assert out.read_text() == "an earlier rollout" and files_under(tmp_path) == before


def test_compare_refuses_a_file_as_its_report_before_evaluating(tmp_path):
    out = tmp_path / "report"
    out.write_text("not a folder")
    # The checkpoint does not exist either: the output is checked before anything is read.
    result = command("vidgen-compare", "ckpts=[missing.ckpt]", f"out={out}", cwd=tmp_path)
    refused(result, f"out={out} is a file")
    assert out.read_text() == "not a folder"


@pytest.mark.slow
def test_compare_refuses_a_report_folder_that_holds_files(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = command("vidgen-compare", "ckpts=[missing.ckpt]", f"out={out}", cwd=tmp_path)
    refused(result, f"out={out} already holds files; pass force=true")
    assert files_under(tmp_path) == {out / "notes.txt"}


@pytest.mark.slow
@pytest.mark.parametrize("script", ["vidgen-rollout", "vidgen-plan"])
def test_an_unwritable_out_is_refused_up_front(tmp_path, checkpoints, script):
    blocker = tmp_path / "results.txt"  # a file where a folder would have to be made
    blocker.write_text("keep")
    out = blocker / "rollout.mp4"
    args = [f"out={out}"] if script == "vidgen-rollout" else ["--target", "300,120", "--out",
                                                               str(out)]  # fmt: skip
    result = command(script, f"ckpt={checkpoints.prednet}", *args, cwd=tmp_path)
    refused(result, "cannot be written", "choose a writable location")
    assert files_under(tmp_path) == {blocker}


@pytest.mark.slow
def test_a_read_only_folder_is_refused_up_front(tmp_path, checkpoints):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        result = command("vidgen-rollout", f"ckpt={checkpoints.prednet}",
                         f"out={locked / 'rollout.mp4'}", cwd=tmp_path)  # fmt: skip
        refused(result, "cannot be written", "Permission denied")
    finally:
        locked.chmod(0o755)


@pytest.mark.slow
def test_a_trained_model_is_told_to_get_data_of_its_size(tmp_path):
    """A CDNA built for 64x64 meets 32x32 data: its advice to change the model's config is
    replaced by advice about the data, since a checkpoint's sizes are fixed."""
    ckpt = write_checkpoint(["experiment=cdna_pusher", "model.net.image_size=[64,64]"],
                            tmp_path / "cdna.ckpt")  # fmt: skip
    generate_dataset(tmp_path / "pusher", world="pusher", episodes=4, frames=12, size=32)
    args = [f"ckpt={ckpt}", f"data={tmp_path / 'pusher'}", "context=2", "horizon=3"]
    result = command("vidgen-rollout", *args, f"out={tmp_path / 'r.mp4'}", cwd=tmp_path)
    error = refused(result, "do not fit", "vidgen-prep")
    assert "set model" not in error and not (tmp_path / "r.mp4").exists()


@pytest.mark.slow
def test_a_half_made_dataset_names_what_to_do(tmp_path, tiny_dataset, train_args):
    half = tmp_path / "data" / "bouncing_balls"
    half.mkdir(parents=True)
    (half / "val.h5").write_bytes((tiny_dataset / "val.h5").read_bytes())
    result = command("vidgen-train", *train_args[1:], cwd=tmp_path)  # data=bouncing_balls
    error = refused(result, "incomplete dataset", "vidgen-prep synthetic", "--force")
    assert "pass --force" not in error


def test_a_logger_whose_package_is_missing_is_one_line():
    group = OmegaConf.create({"tensorboard": {"_target_": "package_not_installed.Logger"}})
    with pytest.raises(VidgenError, match="logger chosen needs a package that is not installed"):
        instantiate_group(group, "logger")


def test_a_spawned_rank_that_diverges_is_one_line(tmp_path, two_process_overrides):
    cfg = compose_train([*two_process_overrides, "model.optimizer.lr=1e30"], tmp_path)
    with pytest.raises(VidgenError, match=r"^training stopped at step \d+: "):
        train(cfg)
    assert (tmp_path / FAILED).read_text().startswith("training stopped at step")
