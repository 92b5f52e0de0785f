"""Frame grids: a still strip (ground truth above, context plus prediction below, one pair
of rows per clip) and animated grids for mp4 (one row per clip, one column per panel)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from matplotlib import colormaps
from torchvision.utils import make_grid

from vidgen.viz.video import to_uint8_frames, upscale_frames

# Predicted frames get a red border so the start of prediction is visible at a glance.
PREDICTION_BORDER = (1.0, 0.2, 0.2)


def rollout_grid(frames: torch.Tensor, predictions: torch.Tensor, padding: int = 2) -> torch.Tensor:
    """frames [B, T, C, H, W] (truth), predictions [B, T - Tc, C, H, W] -> image [C, H', W']."""
    t = frames.shape[1]
    context = t - predictions.shape[1]
    truth = torch.nn.functional.pad(frames.float(), [padding] * 4)
    border = torch.tensor(PREDICTION_BORDER, device=frames.device).view(1, 1, 3, 1, 1)
    marked = border.expand(*predictions.shape[:2], -1, *truth.shape[-2:]).clone()
    marked[..., padding:-padding, padding:-padding] = predictions.float().clamp(0, 1)
    lower = torch.cat([truth[:, :context], marked], dim=1)
    rows = torch.stack([truth, lower], dim=1).flatten(0, 2)  # (B 2 T) C H W
    return make_grid(rows, nrow=t, padding=0)


# Animated grids for mp4: a header (frame counter, a timeline marking where prediction
# starts, column labels) above one row per clip, one column per panel.
VIEW_HEIGHT = 128  # small frames are upscaled (nearest) to about this many pixels
HEADER_TEXT, TIMELINE = 16, 4
BACKGROUND, FRAME_BORDER = (24, 24, 24), (60, 60, 60)
CONTEXT_COLOR, PREDICTION_COLOR, CURSOR_COLOR = (60, 170, 90), (230, 50, 50), (255, 255, 255)
# Absolute error at which the heat map saturates (frames are in [0, 1]).
ERROR_SCALE = 0.5
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Panel:
    """One column of a video grid: ``frames`` [B, T, C, H, W] in [0, 1]; NaN shows as gray
    (nothing to show). ``predicted`` columns get a red border from the first predicted frame."""

    label: str
    frames: torch.Tensor
    predicted: bool = False


def error_heatmap(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over channels as an inferno heat map: [B, T, C, H, W] -> RGB
    [B, T, 3, H, W]; black is exact, yellow is off by ERROR_SCALE or more."""
    error = (pred.float().clamp(0, 1) - truth.float()).abs().mean(2) / ERROR_SCALE
    table = torch.tensor(colormaps["inferno"](np.linspace(0, 1, 256))[:, :3], dtype=torch.float32)
    index = (error.nan_to_num(0).clamp(0, 1) * 255).round().long()
    heat = table[index].permute(0, 1, 4, 2, 3)  # B T H W 3 -> B T 3 H W
    return heat.masked_fill(error.isnan().unsqueeze(2), float("nan"))


def rollout_panels(truth: torch.Tensor, predictions: torch.Tensor, context: int) -> list[Panel]:
    """context | ground truth | prediction | error, over context + horizon frames.

    truth [B, Tt, C, H, W] holds the context and as much of the future as is known (it may
    stop before the horizon ends); predictions [B, horizon, C, H, W].
    """
    b, horizon = predictions.shape[:2]
    total = context + horizon
    predictions = predictions.detach().float().cpu()
    truth = truth.detach().float().cpu()[:, :total]
    unknown = torch.full((b, total - truth.shape[1], *truth.shape[2:]), float("nan"))
    truth = torch.cat([truth, unknown], dim=1)
    held = truth[:, context - 1 : context].expand_as(predictions)  # what the model saw last
    seen = torch.cat([truth[:, :context], held], 1)
    blank = torch.full_like(truth[:, :context], float("nan"))
    return [
        Panel("context", seen),
        Panel("truth", truth),
        Panel("prediction", torch.cat([truth[:, :context], predictions], 1), predicted=True),
        Panel("error", torch.cat([blank, error_heatmap(predictions, truth[:, context:])], 1), True),
    ]


def comparison_panels(
    truth: torch.Tensor, predictions: dict[str, torch.Tensor], context: int
) -> list[Panel]:
    """ground truth | one column per model: the context, then that model's rollout."""
    truth = truth.detach().float().cpu()
    columns = [Panel("truth", truth)]
    for name, predicted in predictions.items():
        frames = torch.cat([truth[:, :context], predicted.detach().float().cpu()], 1)
        columns.append(Panel(name, frames, predicted=True))
    return columns


def video_grid(panels: Sequence[Panel], context: int, upscale: int | None = None) -> np.ndarray:
    """Panels of [B, T, C, H, W] -> uint8 video [T, H', W', 3], one row per clip."""
    b, t, _, h, w = panels[0].frames.shape
    scale = upscale or max(1, VIEW_HEIGHT // h)
    pad = 2
    cell_h, cell_w = h * scale + 2 * pad, w * scale + 2 * pad
    labels = 2 * HEADER_TEXT  # counter text, then column labels, then the timeline
    top = labels + TIMELINE
    canvas = np.empty((t, top + b * cell_h, len(panels) * cell_w, 3), np.uint8)
    canvas[:] = BACKGROUND
    predicting = np.arange(t) >= context
    for col, panel in enumerate(panels):
        pixels = to_uint8_frames(panel.frames.detach().cpu().flatten(0, 1))
        pixels = upscale_frames(pixels, scale).reshape(b, t, h * scale, w * scale, 3)
        x = col * cell_w
        for row in range(b):
            y = top + row * cell_h
            cell = canvas[:, y : y + cell_h, x : x + cell_w]
            cell[:] = FRAME_BORDER
            if panel.predicted:
                cell[predicting] = PREDICTION_COLOR
            cell[:, pad:-pad, pad:-pad] = pixels[row]
        label_width = cv2.getTextSize(panel.label, FONT, 0.4, 1)[0][0]
        label_scale = min(0.4, 0.4 * (cell_w - 4) / max(label_width, 1))  # shrink to fit
        origin = (x + pad, labels - 4)
        cv2.putText(canvas[0], panel.label, origin, FONT, label_scale, CURSOR_COLOR, 1)
    canvas[:, HEADER_TEXT:labels] = canvas[0, HEADER_TEXT:labels]
    # Timeline: green while the model reads context, red while it predicts, a cursor at t.
    width = canvas.shape[2]
    split = round(width * context / t)
    bar = canvas[:, labels : labels + TIMELINE - 1]
    bar[:, :, :split], bar[:, :, split:] = CONTEXT_COLOR, PREDICTION_COLOR
    for step in range(t):
        cursor = min(width - 2, round(width * step / t))
        bar[step, :, cursor : cursor + 2] = CURSOR_COLOR
        phase = "predicting" if step >= context else "context"
        text = f"frame {step + 1}/{t}  {phase}"
        cv2.putText(canvas[step], text, (2, HEADER_TEXT - 4), FONT, 0.4, CURSOR_COLOR, 1)
    return canvas


def clip_strip(videos: torch.Tensor, clips: int = 4, padding: int = 1) -> torch.Tensor:
    """videos [N, T, C, H, W] in [0, 1] -> one image [3, H', W']: the first ``clips`` clips
    as rows, their frames left to right (one row of a sample grid)."""
    shown = videos[:clips].detach().float().clamp(0, 1).cpu()
    shown = shown.expand(-1, -1, 3, -1, -1)  # a one-channel mask shows grey
    return make_grid(shown.flatten(0, 1), nrow=shown.shape[1], padding=padding, pad_value=0.5)
