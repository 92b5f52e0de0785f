"""Held-out evaluation of several predictors on the same windows, and its tables.

Every predictor (trained task or baseline) answers the same call, ``rollout(context,
horizon, actions)``, on the same ``unique`` windows (``VideoDataModule.eval_windows``), and
is scored by the same ``PerStepMetrics`` that training logs, so compare and training agree
to the digit. Two protocols, named in every table: ``rollout`` (context in, horizon out,
predictions fed back) and ``next_frame`` (each scored frame predicted from all true frames
before it, PredNet's protocol). Every table gives MSE and MAE in two conventions and says which: per
pixel (vidgen's) and summed per frame (OpenSTL's), so the numbers sit beside published ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import track
from torch import nn
from torch.utils.data import DataLoader, Subset

from vidgen.data.dataset import ClipDataset, collate_windows, to_model_batch
from vidgen.errors import VidgenError
from vidgen.eval.metrics import PerStepMetrics, write_per_step_csv

# {model name: {metric: [horizon] per-step means}}, as PerStepMetrics computes them.
Results = dict[str, dict[str, torch.Tensor]]
# {table name: Results key}: the names metrics.csv, metrics.md and report.html use.
TABLE_METRICS = {
    "mse_per_pixel": "mse",
    "mse_per_frame_sum": "mse_per_frame_sum",
    "mae_per_pixel": "mae",
    "mae_per_frame_sum": "mae_per_frame_sum",
    "psnr": "psnr",
    "ssim": "ssim",
}
# The summary's columns: (row key, heading, format); "baseline" is filled in.
SUMMARY_COLUMNS = (
    ("mse_per_pixel", "MSE per pixel", ".4e"),
    ("mse_per_frame_sum", "MSE per frame (sum)", ".2f"),
    ("mae_per_pixel", "MAE per pixel", ".4e"),
    ("mae_per_frame_sum", "MAE per frame (sum)", ".2f"),
    ("psnr", "PSNR (dB)", ".2f"),
    ("ssim", "SSIM", ".4f"),
    ("mse_ratio", "MSE / {baseline}", ".3f"),
)
PROTOCOLS = {
    "rollout": "{context} true frames in, {horizon} predicted, each prediction fed back",
    "next_frame": "each of the {horizon} frames after the first {context} predicted from all "
    "true frames before it (PredNet's protocol)",
}
CONVENTIONS = (
    "Frames in [0, 1]. Per pixel: the mean over a frame's C x H x W values; per frame (sum): "
    "their sum, as OpenSTL's tables; both then averaged over frames and clips."
)


def pick_windows(
    available: int, clips: int | None, indices: Iterable[int] | None = None, seed: int | None = None
) -> list[int]:
    """Window indices: ``indices`` as given, else ``clips`` of them (all when None), the
    first ones or, with ``seed`` not None, a seeded random choice in window order."""
    if indices is not None:
        chosen = [int(i) for i in indices]
        bad = [i for i in chosen if not 0 <= i < available]
        if bad:
            raise VidgenError(f"clip {bad[0]} is out of range: there are {available} windows.")
        return chosen
    count = available if clips is None else min(clips, available)
    if count < 1:
        raise VidgenError(f"clips must be at least 1, got {clips}.")
    if seed is None:
        return list(range(count))
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(available, generator=generator)[:count].tolist())


def check_fits(models: Mapping[str, nn.Module], frame_shape: tuple[int, int, int]) -> None:
    """Raise VidgenError if any model cannot take frames of (C, H, W)."""
    for model in models.values():
        check = getattr(model, "check_frame_shape", None)
        if check is not None:
            check(frame_shape)


def batch_loader(dataset: ClipDataset, indices: list[int], batch_size: int) -> DataLoader:
    return DataLoader(
        Subset(dataset, indices), batch_size=batch_size, shuffle=False, collate_fn=collate_windows
    )


@torch.no_grad()
def rollouts(
    models: Mapping[str, nn.Module],
    batch: dict[str, torch.Tensor],
    context: int,
    horizon: int,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Every model's [B, horizon, C, H, W] rollout from the first ``context`` frames of a
    model batch, with what else it conditions on (``PredictorTask.conditioning``: the
    window's actions [B, Tc + horizon, A] when the data has them, states for CDNA)."""
    frames = batch["frames"][:, :context].to(device)
    # Models that are not tasks (baselines, user modules) get the contract's actions.
    actions = batch.get("actions")
    plain = {} if actions is None else {"actions": actions[:, : context + horizon]}
    predictions = {}
    for name, model in models.items():
        conditioning = getattr(model, "conditioning", None)
        inputs = conditioning(batch, context + horizon) if conditioning else plain
        inputs = {key: value.to(device) for key, value in inputs.items()}
        predictions[name] = model.rollout(frames, horizon, **inputs)
    return predictions


@torch.no_grad()
def next_frame_predictions(
    models: Mapping[str, nn.Module],
    batch: dict[str, torch.Tensor],
    context: int,
    horizon: int,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Every model's [B, horizon, C, H, W] one-step predictions of frames context.. from all
    true frames before each: ``next_frames`` where a model has it (PredNet, copy-last),
    otherwise one 1-frame ``rollout`` per prefix, which is the same thing by definition."""
    frames = batch["frames"][:, : context + horizon].to(device)
    predictions = {}
    for name, model in models.items():
        try:
            predictions[name] = model.next_frames(frames, context)
            continue
        except (AttributeError, NotImplementedError):
            pass
        prefixes = {**batch, "frames": frames}
        steps = [
            rollouts({name: model}, prefixes, seen, 1, device)[name]
            for seen in range(context, context + horizon)
        ]
        predictions[name] = torch.cat(steps, dim=1)
    return predictions


def evaluate(
    models: Mapping[str, nn.Module],
    loader: DataLoader,
    context: int,
    horizon: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
    protocol: str = "rollout",
) -> Results:
    """Per-step mean MSE / MAE / PSNR / SSIM of every model over all windows of ``loader``,
    under ``protocol`` (``rollout`` or ``next_frame``, see PROTOCOLS)."""
    if protocol not in PROTOCOLS:
        raise VidgenError(f"protocol={protocol} is not one of {', '.join(PROTOCOLS)}.")
    predict = rollouts if protocol == "rollout" else next_frame_predictions
    metrics = {name: PerStepMetrics(horizon).to(device) for name in models}
    batches = track(
        loader, f"evaluating ({protocol})", console=Console(stderr=True), disable=not progress
    )
    for raw in batches:
        batch = to_model_batch(raw)
        target = batch["frames"][:, context : context + horizon].to(device)
        for name, prediction in predict(models, batch, context, horizon, device).items():
            metrics[name].update(prediction, target)
    return {
        name: {k: v.cpu() for k, v in metric.compute().items()} for name, metric in metrics.items()
    }


def write_metrics_csv(by_protocol: Mapping[str, Results], path: Path) -> Path:
    """``write_per_step_csv`` by protocol, under the TABLE_METRICS names."""
    renamed = {
        protocol: {
            model: {name: by_metric[key] for name, key in TABLE_METRICS.items()}
            for model, by_metric in results.items()
        }
        for protocol, results in by_protocol.items()
    }
    return write_per_step_csv(renamed, path, group="protocol")


def summary(results: Results, baseline: str = "copy_last") -> list[dict[str, float | str]]:
    """One row per model: every TABLE_METRICS mean over steps and the MSE ratio to baseline."""
    base_mse = results[baseline]["mse"].mean().item() if baseline in results else math.nan
    return [
        {
            "model": model,
            **{name: by_metric[key].mean().item() for name, key in TABLE_METRICS.items()},
            "mse_ratio": by_metric["mse"].mean().item() / base_mse,
        }
        for model, by_metric in results.items()
    ]


def protocol_heading(protocol: str, context: int, horizon: int) -> str:
    """``protocol``: what it measured, in words, for every table's heading."""
    return f"{protocol}: " + PROTOCOLS[protocol].format(context=context, horizon=horizon)


def write_metrics_md(
    by_protocol: Mapping[str, Results],
    path: Path,
    context: int,
    horizon: int,
    baseline: str = "copy_last",
) -> Path:
    """One table per protocol, headed by what the protocol measured, then the conventions."""
    headings = [heading.format(baseline=baseline) for _, heading, _ in SUMMARY_COLUMNS]
    lines = []
    for protocol, results in by_protocol.items():
        lines += [
            f"## {protocol_heading(protocol, context, horizon)}",
            "",
            "| model | " + " | ".join(headings) + " |",
            "|---|" + "---:|" * len(headings),
        ]
        for row in summary(results, baseline):
            cells = [format(row[key], spec) for key, _, spec in SUMMARY_COLUMNS]
            lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(CONVENTIONS)
    path.write_text("\n".join(lines) + "\n")
    return path
