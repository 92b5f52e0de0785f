"""Baselines that answer the predictor contract without learning anything."""

from __future__ import annotations

import torch
from torch import nn


class CopyLastFrame(nn.Module):
    """Predicts that nothing moves: every future frame is the last context frame."""

    samples_unconditionally = False

    def rollout(
        self, frames: torch.Tensor, horizon: int, actions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """frames [B, Tc, C, H, W] -> [B, horizon, C, H, W]."""
        return frames[:, -1:].expand(-1, horizon, -1, -1, -1)

    def next_frames(self, frames: torch.Tensor, context: int) -> torch.Tensor:
        """One-step predictions of frames[:, context:], each the frame before it."""
        return frames[:, context - 1 : -1]


BASELINES = {"copy_last": CopyLastFrame}
