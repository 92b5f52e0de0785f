"""One task for every deterministic network that maps frames to frames, so that a new family
(SimVP: Gao, Tan, Wu & Li 2022, "SimVP: Simpler yet Better Video Prediction", CVPR,
arXiv:2206.05099; a PredRNN-style recurrent net: Wang et al. 2017, "PredRNN", NIPS) needs
no task of its own.

The network contract, the only thing such a family implements:

    net(frames [B, Tc, C, H, W] in [0, 1], horizon: int) -> [B, horizon, C, H, W]

the next ``horizon`` frames after the context, in the frames' range (a sigmoid head, say:
the task does not clamp), for any Tc >= 1 and horizon >= 1. How it gets there, all frames at
once or one at a time fed back, is the network's business. Training predicts the last
T - ``eval_context`` frames of each T-frame window from its first ``eval_context`` frames,
with the per-pixel mean squared (``loss="mse"``) or absolute (``"l1"``) error; validation
and test are ``PredictorTask``'s, against copy-last-frame. Actions in the data are not used.

A family is then three new files: its network module under ``vidgen/models``, a model config

    _target_: vidgen.tasks.FramePredictorTask
    net: {_target_: vidgen.models.<module>.<Class>, ...}
    optimizer: {_target_: torch.optim.Adam, _partial_: true, lr: 0.001}

and an experiment config picking it (``- override /model: <name>``). Checkpoints name the
network by its module, which ``vidgen.loading`` accepts for any nn.Module of vidgen.models.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.errors import VidgenError
from vidgen.tasks.base import OptimizerFactory, PredictorTask, SchedulerFactory

LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


class FramePredictorTask(PredictorTask):
    """Trains and evaluates ``net`` under the frame-to-frame contract (see the module)."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        loss: str = "mse",
        eval_context: int = 1,
        eval_horizon: int = 9,
        compile: bool = False,
    ) -> None:
        if loss not in LOSSES:
            raise VidgenError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}.")
        if eval_context < 1:
            raise VidgenError(f"eval_context must be at least 1 frame, got {eval_context}.")
        super().__init__(optimizer, scheduler, eval_context, eval_horizon, compile=compile)
        self.net, self.loss_kind = net, loss

    def predict(self, frames: Tensor, horizon: int) -> Tensor:
        """``net``'s prediction, checked against the contract: a network that breaks it fails
        here with the shapes, not later inside a loss or a metric."""
        predicted = self.net(frames, horizon)
        expected = (frames.shape[0], horizon, *frames.shape[2:])
        if tuple(predicted.shape) != expected:
            raise VidgenError(
                f"{type(self.net).__name__} returned {tuple(predicted.shape)} for context "
                f"{tuple(frames.shape)} and horizon {horizon}, not {expected} "
                "([B, horizon, C, H, W]; see vidgen.tasks.frame_predictor)."
            )
        return predicted

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        frames, context = batch["frames"], self.eval_context
        if frames.shape[1] <= context:
            raise VidgenError(
                f"windows of {frames.shape[1]} frames leave nothing to predict after "
                f"{context} context frames; set data.length above {context}."
            )
        predicted = self.predict(frames[:, :context], frames.shape[1] - context)
        return LOSSES[self.loss_kind](predicted, frames[:, context:])

    def conditioning(self, batch: dict[str, Tensor], length: int) -> dict[str, Tensor]:
        """None: the network sees frames only, even where the data has actions."""
        return {}

    def rollout(self, frames: Tensor, horizon: int, actions: Tensor | None = None) -> Tensor:
        """frames [B, Tc, C, H, W] in [0, 1] -> [B, horizon, C, H, W]; ``actions`` are
        ignored (the predictor contract's signature)."""
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        return self.predict(frames, horizon)
