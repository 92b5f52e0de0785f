"""Trajectory metrics for the billiards predictors (Fragkiadaki et al. 2016, arXiv:1511.07404).

For every prediction made at step t of the ``horizon`` displacements that follow, per future
step k: the position error ||sum_{j<=k} (u~_j - u_j)|| (world units), the velocity angle error
(degrees between predicted and true displacement, where the ball moves) and the velocity
magnitude error | |u~_k| - |u_k| |. Each is reported over all predictions and over those "near a
collision" (the ball collides within the predicted window), as the paper breaks them down.
States are per-step sums and counts reduced with ``sum``, so DDP means are exact.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

TRAJECTORY_METRICS = ("position", "angle", "magnitude")
SUBSETS = ("all", "near_collision")
MIN_SPEED = 1e-3  # world units per frame below which a velocity has no direction


def future_displacements(positions: Tensor, horizon: int) -> Tensor:
    """positions [B, T, K, 2] -> u [B, T, K, horizon, 2], u[:, t, :, k-1] = p[t+k] - p[t+k-1];
    NaN where t + k runs past the window (or the ball is absent)."""
    steps = positions[:, 1:] - positions[:, :-1]  # [B, T-1, K, 2]
    pad = steps.new_full((steps.shape[0], horizon, *steps.shape[2:]), float("nan"))
    padded = torch.cat([steps, pad], dim=1)  # [B, T-1+horizon, K, 2]
    windows = padded.unfold(1, horizon, 1)[:, : positions.shape[1]]  # [B, T, K, 2, horizon]
    return windows.transpose(-1, -2)


def collision_ahead(collisions: Tensor, horizon: int) -> Tensor:
    """collisions [B, T, K, ...] flags of the step t -> t+1 -> [B, T, K] bool: the ball
    collides at some step t .. t + horizon - 1."""
    hit = collisions.flatten(3).amax(-1) > 0 if collisions.dim() > 3 else collisions > 0
    pad = hit.new_zeros((hit.shape[0], horizon - 1, hit.shape[2]))
    return torch.cat([hit, pad], dim=1).unfold(1, horizon, 1).any(-1)[:, : hit.shape[1]]


def trajectory_errors(predicted: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Displacements [..., horizon, 2] -> {metric: [..., horizon]}; NaN where undefined."""
    position = (predicted.cumsum(-2) - target.cumsum(-2)).norm(dim=-1)
    speed_pred, speed_true = predicted.norm(dim=-1), target.norm(dim=-1)
    cosine = (predicted * target).sum(-1) / (speed_pred * speed_true).clamp_min(1e-12)
    angle = torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0)))
    angle = torch.where(speed_true > MIN_SPEED, angle, torch.full_like(angle, float("nan")))
    return {"position": position, "angle": angle, "magnitude": (speed_pred - speed_true).abs()}


class TrajectoryMetrics(Metric):
    """Mean error per future step for each metric, over all predictions and near collisions."""

    full_state_update = False

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        shape = (len(TRAJECTORY_METRICS), len(SUBSETS), horizon)
        self.add_state("total", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predicted: Tensor, target: Tensor, near_collision: Tensor) -> None:
        """predicted, target [N, horizon, 2]; near_collision [N] bool. Steps whose target is
        NaN (absent ball, past the window's end) are not counted."""
        errors = trajectory_errors(predicted.double(), target.double())
        for m, name in enumerate(TRAJECTORY_METRICS):
            values = errors[name]
            for s, rows in enumerate((torch.ones_like(near_collision), near_collision)):
                chosen = values[rows]
                defined = chosen.isfinite()
                self.total[m, s] += chosen.nan_to_num(0.0).sum(0)
                self.count[m, s] += defined.sum(0)

    def compute(self) -> dict[str, Tensor]:
        """{"<metric>" / "<metric>_near_collision": [horizon] per-step means}."""
        means = self.total / self.count.clamp_min(1)
        out = {}
        for m, name in enumerate(TRAJECTORY_METRICS):
            out[name] = means[m, 0]
            out[f"{name}_near_collision"] = means[m, 1]
        return out
