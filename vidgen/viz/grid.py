"""Frame grids: ground truth above, context plus prediction below, one pair of rows per clip."""

from __future__ import annotations

import torch
from torchvision.utils import make_grid

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
