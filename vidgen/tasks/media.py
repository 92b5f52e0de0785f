"""Training media: what a model makes, written during training by callbacks into
``<log_dir>/<folder>`` on global rank zero and, where one is a logger, to TensorBoard.

``GeneratedParts`` shows the two-stream generators of Vondrick, Pirsiavash & Torralba (2016,
"Generating Videos with Scene Dynamics", arXiv:1609.02612): each generated clip beside its
foreground, background and mask, the decomposition the paper's figures show. ``media_folder``
and ``tensorboards`` are the steps every media callback shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid, save_image

from vidgen.models.vgan import VideoParts
from vidgen.viz.video import write_mp4

if TYPE_CHECKING:  # tensorboard is an optional extra
    from torch.utils.tensorboard import SummaryWriter


def media_folder(trainer: pl.Trainer, name: str) -> Path | None:
    """``<log_dir>/<name>`` when this process writes media (global rank zero, outside the
    sanity check), else None. Every rank must call it: ``log_dir`` is broadcast from rank
    zero, so a rank that skipped the call would leave the others waiting."""
    folder = Path(trainer.log_dir or trainer.default_root_dir) / name
    if trainer.sanity_checking or not trainer.is_global_zero:
        return None
    return folder


def tensorboards(trainer: pl.Trainer) -> list[SummaryWriter]:
    """The writers of the trainer's TensorBoard loggers (none with CSV logging)."""
    return [log.experiment for log in trainer.loggers if isinstance(log, TensorBoardLogger)]


def parts_video(parts: VideoParts) -> Tensor:
    """[0, 1] parts, each [B, T, C, H, W] -> one video [T, 3, 4H, BW]: clips side by side;
    video, foreground, background and mask top to bottom."""
    rows = [
        torch.cat(part.detach().float().clamp(0, 1).expand(-1, -1, 3, -1, -1).unbind(0), dim=-1)
        for part in parts
    ]
    return torch.cat(rows, dim=-2).cpu()


def write_parts(trainer: pl.Trainer, parts: VideoParts, out: Path) -> None:
    """[0, 1] parts as ``epoch_XXX_<part>.png`` strips (one row per clip, one column per
    frame) and TensorBoard videos, and all of them as ``epoch_XXX.mp4`` (``parts_video``)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"epoch_{trainer.current_epoch:03d}"
    for name, video in parts._asdict().items():
        video = video.detach().float().clamp(0, 1).expand(-1, -1, 3, -1, -1).cpu()
        grid = make_grid(video.flatten(0, 1), nrow=video.shape[1], padding=1)
        save_image(grid, out / f"{stem}_{name}.png")
        for writer in tensorboards(trainer):
            writer.add_video(f"samples/{name}", video, trainer.global_step)
    # A datamodule knows its clips' frame rate; plain dataloaders (tests) do not.
    fps = getattr(trainer.datamodule, "fps", None) or 10.0
    write_mp4(parts_video(parts), out / f"{stem}.mp4", fps, upscale=2)


class GeneratedParts(pl.Callback):
    """After every validation, the task's ``num_samples`` generated clips and their parts
    (``write_parts``) in ``<log_dir>/<folder>``.

    A task that ``samples_unconditionally`` draws them with ``sample(num, seed=0)``: the same
    noise every epoch, so the files show one set of clips as training goes on. Any other
    generator separates (``separate(images)``) the first frames of the first validation batch.
    """

    def __init__(self, folder: str = "samples") -> None:
        self.folder = folder
        self._first_frames: Tensor | None = None  # [B, C, H, W], for conditional generators

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: object,
        batch: dict[str, Tensor],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and not pl_module.samples_unconditionally:
            self._first_frames = batch["frames"][: pl_module.num_samples, 0]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out = media_folder(trainer, self.folder)
        if out is None:
            return
        if pl_module.samples_unconditionally:
            write_parts(trainer, pl_module.sample(pl_module.num_samples, seed=0), out)
        elif self._first_frames is not None:
            write_parts(trainer, pl_module.separate(self._first_frames), out)
