"""Callbacks shared by the tasks."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import default_collate
from torchvision.utils import save_image

from vidgen.data.dataset import to_model_batch
from vidgen.viz.grid import rollout_grid


class RolloutStrip(pl.Callback):
    """Every ``every_n_epochs``, roll out the first ``clips`` validation windows from their
    first ``context`` frames (default: half the window) and save the grid as
    ``<log_dir>/rollouts/epoch_XXX.png`` (and to TensorBoard when it is a logger)."""

    def __init__(self, every_n_epochs: int = 5, clips: int = 4, context: int | None = None) -> None:
        self.every_n_epochs, self.clips, self.context = every_n_epochs, clips, context

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        # log_dir is broadcast from rank 0: every rank must ask for it, or DDP hangs.
        out = Path(trainer.log_dir or trainer.default_root_dir) / "rollouts"
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if (epoch + 1) % self.every_n_epochs and not trainer.fast_dev_run:
            return
        dataset = trainer.datamodule.dataset("val")
        items = [dataset[i] for i in range(min(self.clips, len(dataset)))]
        batch = to_model_batch(default_collate(items))
        batch = {k: v.to(pl_module.device) for k, v in batch.items()}
        frames = batch["frames"]
        context = self.context or frames.shape[1] // 2
        with torch.no_grad():
            inputs = pl_module.conditioning(batch, frames.shape[1])  # actions (and states)
            horizon = frames.shape[1] - context
            predictions = pl_module.rollout(frames[:, :context], horizon, **inputs)
        grid = rollout_grid(frames, predictions)
        out.mkdir(parents=True, exist_ok=True)
        save_image(grid, out / f"epoch_{epoch:03d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/rollout", grid, trainer.global_step)
