"""A new deterministic model family needs only new files: a network module in the
``vidgen.models`` package, a model config and an experiment config. Here all three are
written at test time outside the repository (the module into a folder added to
``vidgen.models.__path__``, the configs into a folder on Hydra's search path), then the family
trains with ``FramePredictorTask`` (Gao et al. 2022's SimVP and Wang et al. 2017's PredRNN fit
the same contract), saves, loads through the allow-list, rolls out and is compared with the
public commands."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import torch
from hydra import compose, initialize_config_dir

import vidgen
import vidgen.models
from conftest import compose_train
from vidgen.cli.compare import compare
from vidgen.cli.rollout import render_rollout
from vidgen.cli.train import CONFIG_DIR, train
from vidgen.errors import VidgenError
from vidgen.loading import check_config
from vidgen.tasks import FramePredictorTask, PredictorTask, VGANFutureTask, VGANTask, VidgenTask

FAMILY = "toy_next_frame"  # the module's name inside vidgen.models
NETWORK = '''
    """A toy family: the next frame from the last one by two convolutions, rolled out."""

    import torch
    from torch import nn


    class NextFrameConv(nn.Module):
        def __init__(self, channels: int = 3, hidden: int = 8) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(channels, hidden, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(hidden, channels, 3, padding=1),
            )

        def forward(self, frames: torch.Tensor, horizon: int) -> torch.Tensor:
            frame, future = frames[:, -1], []
            for _ in range(horizon):
                frame = torch.sigmoid(self.body(frame))
                future.append(frame)
            return torch.stack(future, 1)
'''
MODEL_CONFIG = f"""
    _target_: vidgen.tasks.FramePredictorTask
    net:
      _target_: vidgen.models.{FAMILY}.NextFrameConv
      hidden: 8
    loss: l1
    eval_context: 2
    eval_horizon: 4
    optimizer:
      _target_: torch.optim.Adam
      _partial_: true
      lr: 0.01
"""
EXPERIMENT_CONFIG = f"""
    # @package _global_
    defaults:
      - override /data: bouncing_balls
      - override /model: {FAMILY}
    task_name: {FAMILY}
    data:
      length: 6
"""


@pytest.fixture
def new_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The family's three files, outside the repository; returns the Hydra search path."""
    files = {
        f"models/{FAMILY}.py": NETWORK,
        f"configs/model/{FAMILY}.yaml": MODEL_CONFIG,
        f"configs/experiment/{FAMILY}.yaml": EXPERIMENT_CONFIG,  # `# @package` comes first
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.setattr(
        vidgen.models, "__path__", [*vidgen.models.__path__, str(tmp_path / "models")]
    )
    yield f"hydra.searchpath=[file://{tmp_path / 'configs'}]"
    sys.modules.pop(f"vidgen.models.{FAMILY}", None)


def compose_command(name: str, overrides: list[str]):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def test_a_family_of_new_files_trains_rolls_out_and_compares(
    new_family, tmp_path, tiny_dataset, tiny_overrides
):
    run = tmp_path / "run"
    overrides = [f"experiment={FAMILY}", new_family, *tiny_overrides]
    cfg = compose_train([*overrides, "trainer.max_epochs=1", "test=false"], run)
    assert (cfg.task_name, cfg.data.length, cfg.model.loss) == (FAMILY, 6, "l1")
    train(cfg)
    ckpt = run / "checkpoints" / "last.ckpt"

    model = vidgen.load(ckpt)
    assert isinstance(model, FramePredictorTask) and model.loss_kind == "l1"
    assert type(model.net).__module__ == f"vidgen.models.{FAMILY}"
    future = model.rollout(torch.rand(2, 2, 3, 32, 32), horizon=7)  # past the trained 4
    assert future.shape == (2, 7, 3, 32, 32) and future.min() >= 0 and future.max() <= 1

    out = tmp_path / "rollout.mp4"
    render_rollout(
        compose_command(
            "rollout",
            [
                f"ckpt={ckpt}",
                f"data.root={tiny_dataset}",
                f"out={out}",
                "clips=2",
                "context=2",
                "horizon=4",
                "upscale=1",
            ],
        )  # fmt: skip
    )
    with av.open(str(out)) as video:
        assert len(list(video.decode(video=0))) == 6  # 2 context + 4 predicted frames

    report = tmp_path / "report"
    results = compare(
        compose_command(
            "compare",
            [
                f"ckpts=[{ckpt}]",
                "names=[toy]",
                f"data.root={tiny_dataset}",
                f"out={report}",
                "context=2",
                "horizon=4",
                "progress=false",
            ],
        )  # fmt: skip
    )
    for protocol in ("rollout", "next_frame"):
        assert set(results[protocol]) == {"toy", "copy_last"}
        assert torch.isfinite(results[protocol]["toy"]["mse"]).all()
    assert "| toy |" in (report / "metrics.md").read_text()


def test_the_family_is_loadable_only_while_it_is_in_the_package(new_family, tmp_path) -> None:
    config = {
        "_target_": "vidgen.tasks.FramePredictorTask",
        "net": {"_target_": f"vidgen.models.{FAMILY}.NextFrameConv"},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True},
    }
    assert check_config(config, tmp_path / "x.ckpt") == config
    for other in (f"vidgen.models.{FAMILY}.nn.Conv2d", f"vidgen.models.{FAMILY}.torch.load"):
        with pytest.raises(VidgenError, match="names"):
            check_config({**config, "net": {"_target_": other}}, tmp_path / "x.ckpt")
    vidgen.models.__path__.pop()  # the folder leaves the package: its classes are refused
    with pytest.raises(VidgenError, match=f"names 'vidgen.models.{FAMILY}.NextFrameConv'"):
        check_config(config, tmp_path / "x.ckpt")


def test_frame_predictor_checks_its_settings_and_the_network_contract() -> None:
    adam = lambda params: torch.optim.Adam(params)  # noqa: E731
    with pytest.raises(VidgenError, match="loss must be one of mse, l1"):
        FramePredictorTask(torch.nn.Identity(), adam, loss="huber")

    class Wrong(torch.nn.Module):  # returns the context, whatever the horizon
        def forward(self, frames, horizon):
            return frames

    task = FramePredictorTask(Wrong(), adam, eval_context=2)
    with pytest.raises(VidgenError, match=r"returned \(1, 2, 3, 8, 8\) .* not \(1, 3, 3, 8, 8\)"):
        task.rollout(torch.rand(1, 2, 3, 8, 8), 3)
    with pytest.raises(VidgenError, match="set data.length above 2"):
        task.loss({"frames": torch.rand(1, 2, 3, 8, 8)})
    with_actions = {"frames": torch.rand(1, 4, 3, 8, 8), "actions": torch.rand(1, 4, 2)}
    assert task.conditioning(with_actions, 4) == {}  # frames only, whatever the data holds


def test_tasks_declare_sampling_and_share_the_saved_config() -> None:
    assert VGANTask.samples_unconditionally
    assert not any(t.samples_unconditionally for t in (PredictorTask, VGANFutureTask))
    assert not FramePredictorTask.samples_unconditionally
    for task in (VGANTask, VGANFutureTask, PredictorTask, FramePredictorTask):
        assert task.on_save_checkpoint is VidgenTask.on_save_checkpoint
