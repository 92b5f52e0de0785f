"""Shared fixtures and helpers: tiny generated datasets, composed training configs, tiny
checkpoints and a hand-written training loop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import Tensor

from data_prep.synthetic import generate_dataset
from vidgen.cli.train import CONFIG_DIR, compose_config, train


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bouncing balls, 32x32: 8 train / 1 val / 1 test episodes of 24 frames."""
    out = tmp_path_factory.mktemp("data") / "bouncing_balls"
    generate_dataset(out, episodes=10, frames=24, size=32, seed=0)
    return out


def experiments_of(model: str) -> list[str]:
    """Experiment names whose config picks ``model`` (each model family tests its own)."""
    return sorted(
        p.stem
        for p in (CONFIG_DIR / "experiment").glob("*.yaml")
        if re.search(rf"^\s*- override /model: {model}\s*$", p.read_text(), re.MULTILINE)
    )


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config `vidgen-train` would compose, with paths inside ``output_dir``."""
    paths = [
        f"paths.output_dir={output_dir}",
        f"paths.log_dir={output_dir / 'logs'}",
        f"paths.data_dir={output_dir / 'data'}",
    ]
    return compose_config("train", [*paths, *overrides])


def trained_checkpoint(experiment: str, dataset: Path, output_dir: Path, extra: list[str]) -> Path:
    """``last.ckpt`` of one vidgen-train epoch of two steps of ``experiment`` on ``dataset``
    (no test), with ``extra`` overrides."""
    short = [f"data.root={dataset}", "data.num_workers=0", "data.batch_size=2",
             "data.samples_per_epoch=4", "data.val_windows=2", "trainer.max_epochs=1",
             "trainer.enable_progress_bar=false", "test=false"]  # fmt: skip
    train(compose_train([f"experiment={experiment}", *short, *extra], output_dir))
    return output_dir / "checkpoints" / "last.ckpt"


def training_losses(task: torch.nn.Module, batch: dict[str, Tensor], steps: int) -> list[float]:
    """``task.loss`` on one batch over ``steps`` updates of the task's own optimizer."""
    optimizer = task.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(steps):
        loss = task.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture
def tiny_overrides(tiny_dataset: Path) -> list[str]:
    """Point any experiment at the tiny dataset and keep its run to a few small batches."""
    return [
        f"data.root={tiny_dataset}",
        "data.num_workers=0",
        "data.batch_size=2",
        "data.samples_per_epoch=4",
        "data.val_windows=4",
        "logger=csv",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


@pytest.fixture
def two_process_overrides(tiny_overrides: list[str]) -> list[str]:
    """The demo on the tiny dataset, trained by two simulated DDP processes."""
    return ["experiment=demo", *tiny_overrides, "trainer=ddp_sim", "trainer.devices=2"]
