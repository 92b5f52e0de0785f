"""Callbacks shared by the tasks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytorch_lightning as pl
import torch
from torchvision.utils import save_image

from vidgen.errors import VidgenError
from vidgen.tasks.media import media_folder, tensorboards
from vidgen.viz.grid import rollout_grid


class RolloutStrip(pl.Callback):
    """Every ``every_n_epochs``, roll out the first ``clips`` validation windows from their
    first ``context`` frames (default: half the window) and save the grid as
    ``<log_dir>/rollouts/epoch_XXX.png`` (and to TensorBoard when it is a logger)."""

    def __init__(self, every_n_epochs: int = 5, clips: int = 4, context: int | None = None) -> None:
        self.every_n_epochs, self.clips, self.context = every_n_epochs, clips, context

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        out = media_folder(trainer, "rollouts")  # every rank asks: the folder is broadcast
        if out is None:
            return
        if (epoch + 1) % self.every_n_epochs and not trainer.fast_dev_run:
            return
        dataset = trainer.datamodule.dataset("val")
        batch = dataset.batch(range(min(self.clips, len(dataset))))
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
        for writer in tensorboards(trainer):
            writer.add_image("val/rollout", grid, trainer.global_step)


class TrainingDiverged(VidgenError):
    """A loss, gradient or weight became NaN or infinite; the message says which and when."""


class StopOnNonFinite(pl.Callback):
    """Stop training at the first non-finite loss or gradient, and never write non-finite
    weights into a checkpoint.

    Gradients are checked before every optimizer step (automatic or manual, as the GANs
    take), so a bad step never reaches the weights; losses are the logged ``*loss*`` values
    of training, and of validation while fitting. Weights are checked whenever a checkpoint
    is about to be written: by ModelCheckpoint, on an exception, or by a SLURM requeue.
    Under mixed precision with a gradient scaler, inf gradients are the scaler's to skip.
    """

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return
        grads = [(f"the gradient of {name}", p.grad) for name, p in pl_module.named_parameters()]
        bad_gradient = first_non_finite(grads)
        if bad_gradient:
            # A non-finite loss explains its gradients: name the loss when there is one.
            loss = non_finite_loss(trainer.callback_metrics, "train/")
            raise stop(trainer, pl_module, loss or bad_gradient)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object
    ) -> None:
        problem = non_finite_loss(trainer.callback_metrics, "train/")
        if problem:
            raise stop(trainer, pl_module, problem)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        problem = non_finite_loss(trainer.callback_metrics, "val/")
        if problem:
            raise stop(trainer, pl_module, problem)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        weights = ((f"the weight {k}", v) for k, v in checkpoint["state_dict"].items())
        problem = first_non_finite(weights)
        if problem:
            raise stop(trainer, pl_module, f"{problem}, so no checkpoint was written")


def first_non_finite(named: Iterable[tuple[str, torch.Tensor | None]]) -> str | None:
    """``"<label> is nan"`` (or ``inf``) for the first non-finite float tensor, else None;
    all are checked on their device with one synchronisation."""
    named = [(label, t) for label, t in named if t is not None and t.is_floating_point()]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(t.detach()).all() for _, t in named])
    if bool(finite.all()):
        return None
    label, tensor = named[int((~finite).nonzero()[0, 0])]
    return f"{label} is {'nan' if tensor.isnan().any() else 'inf'}"


def non_finite_loss(metrics: Mapping[str, torch.Tensor], prefix: str) -> str | None:
    """The first logged loss under ``prefix`` (``train/loss``, ``train/loss_d``, ...) that is
    not finite."""
    losses = [(k, torch.as_tensor(v)) for k, v in metrics.items() if k.startswith(prefix)]
    return first_non_finite((k, v) for k, v in losses if "loss" in k)


def stop(trainer: pl.Trainer, pl_module: pl.LightningModule, problem: str) -> TrainingDiverged:
    """The one-line reason, counted in training batches (1 = the first)."""
    advice = "lower the learning rate (model.optimizer.lr)"
    if pl_module.automatic_optimization:  # Lightning clips only what it steps itself
        advice += " or clip gradients (trainer.gradient_clip_val=1.0)"
    step = trainer.fit_loop.total_batch_idx + 1
    return TrainingDiverged(f"training stopped at step {step}: {problem}; {advice}.")
