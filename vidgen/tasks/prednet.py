"""PredNet training (Lotter, Kreiman & Cox 2016, arXiv:1605.08104).

Two losses, as the released Keras code has them: the error-unit loss (weighted per-layer
mean of E, time weights 0 for t=0 then 1/(T-1); L_0 weights (1, 0, 0, 0), L_all
(1, 0.1, 0.1, 0.1)), and, with ``extrap_start_time`` set for multi-step fine-tuning,
0.5 x pixel MAE over t >= 1 while the network feeds back its own predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vidgen.errors import VidgenError
from vidgen.models.prednet import PredNet
from vidgen.tasks.base import OptimizerFactory, PredictorTask, SchedulerFactory


class PredNetTask(PredictorTask):
    def __init__(
        self,
        net: PredNet,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        layer_loss_weights: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
        extrap_start_time: int | None = None,
        eval_context: int = 1,
        eval_horizon: int = 9,
        next_frame_eval: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__(
            optimizer, scheduler, eval_context, eval_horizon, next_frame_eval, compile=compile
        )
        if len(layer_loss_weights) != net.num_layers:
            raise ValueError(
                f"layer_loss_weights has {len(layer_loss_weights)} entries; "
                f"the network has {net.num_layers} layers"
            )
        self.net = net
        self.extrap_start_time = extrap_start_time
        self.register_buffer(
            "layer_weights", torch.tensor(layer_loss_weights, dtype=torch.float32), persistent=False
        )

    def check_frame_shape(self, shape: tuple[int, int, int]) -> None:
        channels, height, width = shape
        factor = 2 ** (self.net.num_layers - 1)
        if channels != self.net.stack_sizes[0] or height % factor or width % factor:
            raise VidgenError(
                f"frames of {channels}x{height}x{width} do not fit this PredNet: it needs "
                f"{self.net.stack_sizes[0]} channels and H, W divisible by {factor}."
            )

    @staticmethod
    def time_weights(
        steps: int, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """0 for the first step (a prediction from zero state), then 1 / (T - 1) each."""
        weights = torch.full((steps,), 1.0 / (steps - 1), device=device, dtype=dtype)
        weights[0] = 0.0
        return weights

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        frames = batch["frames"]  # B T C H W
        predictions, errors = self.net(frames, extrap_start_time=self.extrap_start_time)
        if self.extrap_start_time is None:
            per_step = errors @ self.layer_weights  # B T
        else:
            per_step = 0.5 * (predictions - frames).abs().flatten(2).mean(-1)  # B T
        return (per_step @ self.time_weights(frames.shape[1], frames.device, per_step.dtype)).mean()

    def rollout(
        self, frames: torch.Tensor, horizon: int, actions: torch.Tensor | None = None
    ) -> torch.Tensor:
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        predictions, _ = self.net(frames, future_steps=horizon)
        return predictions[:, -horizon:]

    def next_frames(self, frames: torch.Tensor, context: int) -> torch.Tensor:
        predictions, _ = self.net(frames)
        return predictions[:, context:]
