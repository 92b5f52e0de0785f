"""The bases of the tasks: ``VidgenTask``, the root of every one (the model config kept in
checkpoints, declared capabilities), and ``PredictorTask``, that of every trainable
predictor: the rollout contract, evaluation per future step against copy-last-frame, and
optimizers built from Hydra partials.

Learning-rate schedulers step once per optimizer step: torch's count steps, ``RunFractionLR``
follows the fraction of the planned run done.

Subclasses implement ``rollout`` (and ``next_frames`` when their paper scores one-step
predictions) plus ``training_step``; validation and test are shared. Every task takes
``compile`` (see ``CompiledNetworks``) and trains under ``trainer.precision=bf16-mixed``;
evaluation metrics are computed in fp32 whatever the precision.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric

from vidgen import __version__
from vidgen.errors import VidgenError
from vidgen.eval import METRIC_NAMES, CopyLastFrame, PerStepMetrics
from vidgen.tasks.schedules import RunFractionLR, check_bounded, run_progress

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class CompiledNetworks:
    """With ``compile_networks`` set, ``configure_model`` compiles the networks a task trains
    (its attributes named in ``compiled_networks``) with ``nn.Module.compile``: in place, so
    parameter names, and so checkpoints, are those of the eager model. Lightning calls the hook
    at every fit, validate and test; each network is compiled once. Outside a Trainer (e.g.
    ``vidgen.load``) nothing is compiled.
    """

    compiled_networks: tuple[str, ...] = ("net",)
    compile_networks: bool = False

    def configure_model(self) -> None:
        if not self.compile_networks or getattr(self, "_networks_compiled", False):
            return
        for name in self.compiled_networks:
            getattr(self, name).compile()
        self._networks_compiled = True


class VidgenTask(pl.LightningModule):
    """The root of every vidgen task: the composed model config, which checkpoints store so
    that they rebuild their model alone (``vidgen.loading``), and the capabilities commands
    read instead of checking classes.

    ``samples_unconditionally``: the task draws whole clips from noise with
    ``sample(num, seed=None)`` (parts [num, T, C, H, W] in [0, 1]) and has no ``rollout``.
    """

    samples_unconditionally: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.config: dict | None = None  # set by vidgen-train and vidgen.load

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["vidgen"] = {"model": self.config, "version": __version__}


class PredictorTask(CompiledNetworks, VidgenTask):
    """Evaluates on windows: ``eval_context`` true frames in, the next ``eval_horizon`` out.

    With ``next_frame_eval`` every scored frame is predicted from all true frames before it
    (PredNet's protocol); otherwise the model rolls out from the context alone.
    """

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        eval_context: int = 1,
        eval_horizon: int = 9,
        next_frame_eval: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.compile_networks = compile
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.eval_context, self.eval_horizon = eval_context, eval_horizon
        self.next_frame_eval = next_frame_eval
        self.baseline = CopyLastFrame()
        self.metrics = torch.nn.ModuleDict(
            {
                f"{stage}_{who}": PerStepMetrics(eval_horizon)
                for stage in ("val", "test")
                for who in ("model", "copy_last")
            }
        )
        # The loss as a sum and a count reduced over ranks: exact with uneven shards, where
        # Lightning's sync_dist mean truncates the averaged batch count to an integer.
        for stage in ("val", "test"):
            # A NaN batch loss must show in the mean (and stop training), not be dropped:
            # replaced by NaN, it keeps its weight ("disable" would drop the weights).
            self.metrics[f"{stage}_loss"] = MeanMetric(nan_strategy=float("nan"))
        # {stage: {"model" | "copy_last": {metric: [value per future step]}}}, after evaluation.
        self.per_step_results: dict[str, dict[str, dict[str, list[float]]]] = {}

    def rollout(
        self, frames: torch.Tensor, horizon: int, actions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """frames [B, Tc, C, H, W] in [0, 1] -> predicted [B, horizon, C, H, W]."""
        raise NotImplementedError

    def conditioning(self, batch: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
        """Keyword inputs of ``rollout`` besides the frames, for windows of ``length`` frames:
        the batch's actions, one per context and future frame, when it has them."""
        actions = batch.get("actions")
        return {} if actions is None else {"actions": actions[:, :length]}

    def next_frames(self, frames: torch.Tensor, context: int) -> torch.Tensor:
        """One-step predictions of frames[:, context:] from the true frames before each."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def check_frame_shape(self, shape: tuple[int, int, int]) -> None:
        """Raise VidgenError if frames of (C, H, W) cannot go through this model."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        frames, context, horizon = batch["frames"], self.eval_context, self.eval_horizon
        if frames.shape[1] < context + horizon:
            raise VidgenError(
                f"windows of {frames.shape[1]} frames are too short for {context} context "
                f"and {horizon} predicted frames; set data.length={context + horizon}."
            )
        frames = frames[:, : context + horizon]
        target = frames[:, context:]
        if self.next_frame_eval:
            pred, copy_last = (
                self.next_frames(frames, context),
                self.baseline.next_frames(frames, context),
            )
        else:
            conditioning = self.conditioning(batch, context + horizon)
            pred = self.rollout(frames[:, :context], horizon, **conditioning)
            copy_last = self.baseline.rollout(frames[:, :context], horizon)
        loss = self.loss(batch)
        # Autocast off (bf16-mixed): the metrics, SSIM's convolutions included, in fp32.
        with torch.autocast(frames.device.type, enabled=False):
            self.metrics[f"{stage}_model"].update(pred, target)
            self.metrics[f"{stage}_copy_last"].update(copy_last, target)
            self.metrics[f"{stage}_loss"].update(loss, weight=len(frames))

    def _log_metrics(self, stage: str) -> None:
        # compute() already reduced over ranks: log as is, without a second mean.
        per_step = {who: self.metrics[f"{stage}_{who}"].compute() for who in ("model", "copy_last")}
        values = {f"{stage}/loss": self.metrics[f"{stage}_loss"].compute()}
        for name in METRIC_NAMES:
            values[f"{stage}/{name}"] = per_step["model"][name].mean()
            values[f"{stage}/copy_last_{name}"] = per_step["copy_last"][name].mean()
        values[f"{stage}/mse_ratio"] = values[f"{stage}/mse"] / values[f"{stage}/copy_last_mse"]
        self.log_dict({k: v.float() for k, v in values.items()})
        self.per_step_results[stage] = {
            who: {name: v.tolist() for name, v in metrics.items()}
            for who, metrics in per_step.items()
        }
        for metric in self.metrics.values():
            metric.reset()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        if isinstance(scheduler, RunFractionLR):
            scheduler.bind(lambda: run_progress(self.trainer))
        return {
            "optimizer": optimizer,
            # Every schedule steps per optimizer step, and the step count and the run's
            # fraction done are the same on any number of devices.
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_fit_start(self) -> None:
        # After configure_optimizers, with the run's limits parsed: refuse an unbounded run.
        if isinstance(self.lr_schedulers(), RunFractionLR):
            check_bounded(self.trainer)
