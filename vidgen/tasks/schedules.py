"""Learning-rate schedules placed on the fraction of the planned run done, not on step counts.

A step schedule fits one run length. The demo's drop at step 400 of its 500 leaves a run of
50 epochs at a tenth of its rate for nine tenths of it, and a run bounded by
``trainer.max_time`` has no step count to place a drop at. ``RunFractionLR`` drops (and
optionally warms up) at fractions of the run instead, read from the Trainer at every step:
the largest of ``global_step / max_steps``, ``global_step / (max_epochs x steps per epoch)``
and ``elapsed / max_time`` among the limits set, since the run ends at whichever it reaches
first. Paper recipes keep their published step schedules (PredNet, Lotter et al. 2016,
arXiv:1605.08104: Adam 1e-3, x0.1 at step 9,375).

It is a torch ``LRScheduler``, so Lightning steps it once per optimizer step, checkpoints it
through ``state_dict`` (which leaves out the bound progress source) and LearningRateMonitor
logs its rates.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer

from vidgen.errors import VidgenError

Progress = Callable[[], float]


class RunFractionLR(torch.optim.lr_scheduler.LRScheduler):
    """Each base rate x ``gamma`` per milestone passed (fractions of the run, increasing, in
    (0, 1)), ramped linearly from ``warmup_start`` x itself over the first ``warmup`` of the
    run. The fraction done comes from ``bind(progress)``; until then it is 0."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        milestones: Sequence[float],
        gamma: float = 0.1,
        warmup: float = 0.0,
        warmup_start: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        milestones = [float(m) for m in milestones]
        if milestones != sorted(milestones) or not all(0.0 < m < 1.0 for m in milestones):
            raise VidgenError(
                f"RunFractionLR milestones={milestones} must be increasing fractions of the run "
                "between 0 and 1 (0.8: after 80% of it)."
            )
        if not gamma > 0.0:
            raise VidgenError(f"RunFractionLR gamma={gamma} must be above 0.")
        if not 0.0 <= warmup < 1.0 or not 0.0 <= warmup_start <= 1.0:
            raise VidgenError(
                f"RunFractionLR warmup={warmup} and warmup_start={warmup_start} must be "
                "fractions in [0, 1) and [0, 1]."
            )
        self.milestones, self.gamma = milestones, gamma
        self.warmup, self.warmup_start = warmup, warmup_start
        # Set before the base class takes its first step, which reads it.
        self._progress: Progress | None = None
        super().__init__(optimizer, last_epoch)

    def bind(self, progress: Progress) -> None:
        """Read the fraction of the run done from ``progress()`` at every step."""
        self._progress = progress

    def factor(self, fraction: float) -> float:
        """The multiplier of the base rates once ``fraction`` of the run is done."""
        drops = self.gamma ** bisect.bisect_right(self.milestones, fraction)
        if fraction >= self.warmup:
            return drops
        return drops * (self.warmup_start + (1.0 - self.warmup_start) * fraction / self.warmup)

    def get_lr(self) -> list[float | torch.Tensor]:
        fraction = 0.0 if self._progress is None else min(max(self._progress(), 0.0), 1.0)
        return [base * self.factor(fraction) for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        # The progress source is a closure over the Trainer: bound again by each fit, so a
        # loaded state keeps the binding it is loaded into.
        return {k: v for k, v in super().state_dict().items() if k != "_progress"}


def _timer(trainer: pl.Trainer) -> Timer | None:
    """The Timer that ``max_time`` adds (or one given with a duration), if any."""
    timers = (cb for cb in trainer.callbacks if isinstance(cb, Timer))
    return next((timer for timer in timers if timer.time_remaining() is not None), None)


def check_bounded(trainer: pl.Trainer) -> None:
    """Refuse a run that no limit ends: its fractions would not exist."""
    if trainer.max_steps == -1 and trainer.max_epochs in (None, -1) and _timer(trainer) is None:
        raise VidgenError(
            "a schedule in fractions of the run needs the run's length; set "
            "trainer.max_epochs, trainer.max_steps or trainer.max_time."
        )


def run_progress(trainer: pl.Trainer) -> float:
    """The fraction of the planned run done, in [0, 1]: the largest over the limits set."""
    step, fractions = trainer.global_step, []
    if trainer.max_steps > 0:
        fractions.append(step / trainer.max_steps)
    # Infinite until the training data is set up, or for data without a length.
    batches = trainer.num_training_batches
    if trainer.max_epochs is not None and trainer.max_epochs > 0 and 0 < batches < math.inf:
        per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        fractions.append(step / (trainer.max_epochs * per_epoch))
    timer = _timer(trainer)
    if timer is not None:
        elapsed, remaining = timer.time_elapsed("train"), timer.time_remaining("train")
        # Out of time (or given none), the run is done; min_epochs may still keep it going.
        fraction = 1.0 if remaining <= 0 else elapsed / (elapsed + remaining)
        # Rank 0's clock decides, so every rank changes its rate at the same step.
        fractions.append(trainer.strategy.broadcast(fraction))
    if not fractions:
        raise VidgenError(
            "the training data has no length, so its epochs do not bound a schedule in "
            "fractions of the run; set trainer.max_steps or trainer.max_time."
        )
    return min(max(fractions), 1.0)
