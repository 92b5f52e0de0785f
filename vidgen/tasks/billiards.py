"""Billiards physics predictors (Fragkiadaki et al. 2016, arXiv:1511.07404): training, per-step
trajectory evaluation, and frame rollouts by visual imagination.

Training is teacher-forced: at every step t of a window the model sees glimpses at the balls'
true positions and the force applied at frame t, and predicts their next ``horizon``
displacements u_{t+k} = p_{t+k} - p_{t+k-1}, with the loss sum_k w_k ||u~_{t+k} - u_{t+k}||^2,
w_k = exp(-k^(1/4)) (larger for short horizons; the paper's exact weights are not public).
Frame rollouts (evaluation, rollout strips, vidgen-rollout and vidgen-compare) imagine
(``vidgen.tasks.billiards_imagination``) under the window's recorded forces
(``conditioning``); planning is in ``vidgen.tasks.billiards_planning``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from vidgen.errors import VidgenError
from vidgen.eval.billiards import TrajectoryMetrics, collision_ahead, future_displacements
from vidgen.tasks.base import OptimizerFactory, PredictorTask, SchedulerFactory
from vidgen.tasks.billiards_imagination import erase_balls, find_balls, imagine


class BilliardsTask(PredictorTask):
    """Wraps an object- or frame-centric predictor; batches carry the simulator's tracks."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        max_balls: int = 3,
        eval_context: int = 4,
        eval_horizon: int = 20,
        compile: bool = False,
    ) -> None:
        super().__init__(
            optimizer, scheduler, eval_context, eval_horizon, next_frame_eval=False, compile=compile
        )
        self.net, self.max_balls = net, max_balls
        steps = torch.arange(1, net.horizon + 1, dtype=torch.float32)
        self.register_buffer("horizon_weights", torch.exp(-(steps**0.25)), persistent=False)
        # (H, W) of the training frames, kept in checkpoints: the glimpse scale depends on it.
        self.register_buffer("frame_size", torch.zeros(2, dtype=torch.long))
        self.trajectory = nn.ModuleDict(
            {
                f"{stage}_{who}": TrajectoryMetrics(net.horizon)
                for stage in ("val", "test")
                for who in ("model", "constant_velocity")
            }
        )

    def check_frame_shape(self, shape: tuple[int, int, int]) -> None:
        self.frame_size.copy_(torch.tensor(shape[1:]))

    def predict_tracks(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced predictions, targets [B, T, K, horizon, 2] and a mask [B, T, K] of
        the steps whose glimpse history is real (a window's first steps repeat its first frame,
        true only when the episode starts there, at rest before the force)."""
        frames, positions = batch["frames"], batch["objects/positions"]
        forces = batch["objects/forces"]
        predicted, _ = self.net(frames, positions, forces)
        target = future_displacements(positions, self.net.horizon)
        real_history = torch.ones(positions.shape[:3], dtype=torch.bool, device=frames.device)
        at_start = forces[:, 0].abs().flatten(1).amax(-1) > 0  # [B]
        real_history[:, : self.net.history - 1] = at_start[:, None, None]
        return predicted, target, real_history

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        predicted, target, real_history = self.predict_tracks(batch)
        valid = target.isfinite().all(-1) & real_history[..., None]  # [B, T, K, horizon]
        scale = self.net.displacement_scale
        error = ((predicted - target.nan_to_num(0.0)) / scale).pow(2).sum(-1)
        weights = self.horizon_weights * valid
        total = weights.sum()
        if self.training and dist.is_available() and dist.is_initialized():
            # DDP averages the ranks' gradients; dividing by the ranks' mean weight (the same
            # on every rank) makes that average the one-process loss, however the valid steps
            # fall across ranks. Training steps are collective anyway, evaluation's are not.
            dist.all_reduce(total := total.clone())
            total = total / dist.get_world_size()
        return (error * weights).sum() / total.clamp_min(1e-8)

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        super()._evaluate(batch, stage)  # frames through rollout() against copy-last-frame
        predicted, target, real_history = self.predict_tracks(batch)
        positions = batch["objects/positions"]
        last = torch.cat([positions[:, :1], positions[:, :-1]], dim=1)
        constant = (positions - last)[:, :, :, None].expand_as(target)
        # Score steps with a real history and a real velocity for the baseline (t >= 1).
        rows = real_history.clone()
        rows[:, 0] = False
        near = collision_ahead(batch["objects/collisions"], self.net.horizon)
        for who, guess in (("model", predicted), ("constant_velocity", constant)):
            self.trajectory[f"{stage}_{who}"].update(guess[rows], target[rows], near[rows])

    def _log_metrics(self, stage: str) -> None:
        super()._log_metrics(stage)
        values = {}
        for who in ("model", "constant_velocity"):
            metric = self.trajectory[f"{stage}_{who}"]
            prefix = f"{stage}/" if who == "model" else f"{stage}/cv_"
            for name, per_step in metric.compute().items():
                values[f"{prefix}{name}_error"] = per_step.mean()
                self.per_step_results[stage].setdefault(who, {})[name] = per_step.tolist()
            metric.reset()
        values[f"{stage}/position_error_ratio"] = (
            values[f"{stage}/position_error"] / values[f"{stage}/cv_position_error"]
        )
        self.log_dict({k: v.float() for k, v in values.items()})

    def conditioning(self, batch: dict[str, Tensor], length: int) -> dict[str, Tensor]:
        """The force applied to each ball at each of the window's first ``length`` frames."""
        if "objects/forces" not in batch:
            raise VidgenError(
                "this model predicts from the applied forces, and the batches have no "
                "objects/forces; use data rendered by vidgen-prep synthetic --world billiards."
            )
        return {"forces": batch["objects/forces"][:, :length]}

    def rollout(self, frames: Tensor, horizon: int, forces: Tensor | None = None) -> Tensor:
        """Balls found by colour in the context, then imagined ``horizon`` frames ahead.

        frames [B, Tc, C, H, W]; forces [B, >= Tc, K, 2] applied to ball k (the ball of
        colour k) at each context and future frame, none at frames past the given ones
        (default: none at all) -> [B, horizon, C, H, W].
        """
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        b, context = frames.shape[:2]
        full = frames.new_zeros(b, context + horizon, self.max_balls, 2)
        if forces is not None:
            if forces.shape[1] < context or forces.shape[2] > self.max_balls:
                raise VidgenError(
                    f"forces of shape {tuple(forces.shape)} do not fit {context} context frames "
                    f"and this model's {self.max_balls} balls; pass [B, >= {context}, "
                    f"<= {self.max_balls}, 2], one force per ball and frame."
                )
            given = forces[:, : context + horizon]
            full[:, : given.shape[1], : given.shape[2]] = given.to(frames.dtype)
        positions, radii = find_balls(frames, self.max_balls, self.net.arena)
        backgrounds = erase_balls(frames[:, -1])
        return imagine(self.net, frames, positions, radii, backgrounds, horizon, full)[1]
