"""Per-timestep video prediction metrics that sync correctly across DDP ranks.

Every state is a per-step *sum* plus a per-step count, reduced with ``sum``: the mean over
all clips on all ranks is exact, never a mean of per-rank means. Settings, stated once:
frames in [0, 1]; MSE and MAE per pixel (the mean over a frame's C*H*W values); PSNR per
frame, 10 log10(1 / MSE), then averaged; SSIM with an 11x11 Gaussian window, sigma 1.5,
data_range 1, per frame, then averaged.

Published tables often use another convention for MSE and MAE: summed over the C*H*W values
of a frame, then averaged over frames and clips (OpenSTL, Tan et al. 2023,
arXiv:2306.11249). ``PerStepMetrics`` reports both, under names that say which.
``write_per_step_csv`` writes its results, as vidgen-train and vidgen-compare save them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure

METRIC_NAMES = ("mse", "mae", "psnr", "ssim")  # MSE and MAE per pixel
# {name: the per-pixel metric it is C*H*W times}: per frame, summed over its values.
FRAME_SUM_NAMES = {"mse_per_frame_sum": "mse", "mae_per_frame_sum": "mae"}
# PSNR of a perfect frame is infinite; clamp the MSE so a mean stays finite (100 dB).
MIN_MSE = 1e-10


def frame_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """MSE, MAE (per pixel), PSNR and SSIM of every frame: [B, T, C, H, W] pairs -> dict of
    [B, T]."""
    b, t = pred.shape[:2]
    pred, target = pred.float().clamp(0, 1), target.float()
    difference = (pred - target).flatten(2)
    mse = difference.pow(2).mean(-1)
    psnr = -10.0 * torch.log10(mse.clamp_min(MIN_MSE))
    ssim = structural_similarity_index_measure(
        pred.flatten(0, 1), target.flatten(0, 1), data_range=1.0, reduction="none"
    ).reshape(b, t)
    return {"mse": mse, "mae": difference.abs().mean(-1), "psnr": psnr, "ssim": ssim}


class PerStepMetrics(Metric):
    """Mean MSE / MAE / PSNR / SSIM for each of ``horizon`` predicted steps over all clips,
    and MSE / MAE summed per frame."""

    full_state_update = False

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        for name in METRIC_NAMES:
            self.add_state(name, torch.zeros(horizon, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(horizon, dtype=torch.float64), dist_reduce_fx="sum")
        # C*H*W of the frames scored; "max" so a rank that scored nothing still reports it.
        self.add_state(
            "values_per_frame", torch.zeros((), dtype=torch.float64), dist_reduce_fx="max"
        )

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape or pred.shape[1] != self.horizon:
            raise ValueError(
                f"expected prediction and target [B, {self.horizon}, C, H, W], "
                f"got {list(pred.shape)} and {list(target.shape)}"
            )
        for name, values in frame_metrics(pred, target).items():
            getattr(self, name).add_(values.sum(0).double())
        self.count.add_(pred.shape[0])
        self.values_per_frame.fill_(pred[0, 0].numel())

    def compute(self) -> dict[str, torch.Tensor]:
        """{name: [horizon] per-step means}, for METRIC_NAMES then FRAME_SUM_NAMES."""
        means = {name: getattr(self, name) / self.count for name in METRIC_NAMES}
        for name, per_pixel in FRAME_SUM_NAMES.items():
            means[name] = means[per_pixel] * self.values_per_frame
        return means


# {group (a split or a protocol): {model: {metric: [horizon] per-step values}}}
PerStepResults = Mapping[str, Mapping[str, Mapping[str, Iterable[float]]]]


def write_per_step_csv(results: PerStepResults, path: Path, group: str) -> Path:
    """Long format ``<group>,model,metric,step,value``: step 1..horizon (1 = the first
    predicted frame), then a ``mean`` row over the steps."""
    rows = [f"{group},model,metric,step,value"]
    for name, by_model in results.items():
        for model, by_metric in by_model.items():
            for metric, per_step in by_metric.items():
                values = [float(v) for v in per_step]
                prefix = f"{name},{model},{metric}"
                rows += [f"{prefix},{step},{v:.10g}" for step, v in enumerate(values, 1)]
                rows.append(f"{prefix},mean,{sum(values) / len(values):.10g}")
    path.write_text("\n".join(rows) + "\n")
    return path
