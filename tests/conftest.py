"""Shared fixtures: tiny generated datasets and composed training configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from data_prep.synthetic import generate_dataset
from vidgen.cli.train import CONFIG_DIR


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
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.output_dir={output_dir}",
                f"paths.log_dir={output_dir / 'logs'}",
                f"paths.data_dir={output_dir / 'data'}",
                *overrides,
            ],
        )


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
