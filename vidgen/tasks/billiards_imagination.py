"""Visual imagination with a billiards predictor (Fragkiadaki et al. 2016, arXiv:1511.07404,
Fig. 1): find the balls in rendered frames, erase them, and roll a model forward on frames
drawn from its own predictions.

Each predicted next position is rendered into a new frame (the table with the balls erased,
balls redrawn) that the model then looks at. Perception reads the simulator's renderer
exactly: ball k is the only thing of colour ``BALL_COLORS[k]``, and everything that is not a
blend of cloth and wall is a ball.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from vidgen.sim.billiards import BALL_COLORS, CLOTH, WALL, paint_balls

COLOR_TOLERANCE = 0.12  # max channel difference (of 1) for a pixel to count as a ball's colour


def find_balls(frames: Tensor, num_balls: int, arena: float) -> tuple[Tensor, Tensor]:
    """Ball k is the centroid of the pixels of colour BALL_COLORS[k]. frames [B, T, C, H, W] in
    [0, 1] -> positions [B, T, K, 2] (NaN when absent), radii [B, K] (world units)."""
    h, w = frames.shape[-2:]
    colors = torch.as_tensor(BALL_COLORS[:num_balls], dtype=frames.dtype, device=frames.device)
    colors = colors.div(255.0)[:, :, None, None]  # [K, C, 1, 1]
    mask = ((frames[:, :, None] - colors).abs().amax(3) < COLOR_TOLERANCE).to(frames.dtype)
    count = mask.sum((-1, -2))  # [B, T, K]
    xs = torch.arange(w, device=frames.device, dtype=frames.dtype) + 0.5
    ys = torch.arange(h, device=frames.device, dtype=frames.dtype) + 0.5
    centre = torch.stack([(mask.sum(-2) * xs).sum(-1), (mask.sum(-1) * ys).sum(-1)], -1)
    positions = centre / count[..., None] * centre.new_tensor([arena / w, arena / h])
    positions = positions.masked_fill(count[..., None] == 0, float("nan"))
    radii = (count.amax(1) / torch.pi).sqrt() * (arena / w)
    return positions, radii.masked_fill(count.amax(1) == 0, 0.0)


def erase_balls(frames: Tensor) -> np.ndarray:
    """Backgrounds: frames [B, C, H, W] in [0, 1] -> uint8 [B, H, W, 3] where every pixel that
    is not a blend of cloth and wall (a ball or its rim) becomes cloth."""
    image = frames.permute(0, 2, 3, 1).mul(255.0).round().cpu().numpy()
    cloth, wall = np.array(CLOTH, np.float64), np.array(WALL, np.float64)
    along = ((image - wall) @ (cloth - wall) / np.sum((cloth - wall) ** 2)).clip(0, 1)
    off_segment = np.abs(image - (wall + along[..., None] * (cloth - wall))).max(-1) > 10
    image[off_segment] = cloth
    return image.astype(np.uint8)


def render_positions(
    backgrounds: np.ndarray, positions: Tensor, radii: Tensor, arena: float
) -> Tensor:
    """Balls at positions [B, K, 2] over backgrounds [B, H, W, 3] -> float [B, 3, H, W]."""
    pos, rad = positions.detach().cpu().numpy(), radii.detach().cpu().numpy()
    images = np.stack(
        [paint_balls(bg, p, r, arena) for bg, p, r in zip(backgrounds, pos, rad, strict=True)]
    )
    return torch.from_numpy(images).to(positions.device).permute(0, 3, 1, 2).float().div(255.0)


@torch.no_grad()
def imagine(
    net: nn.Module,
    frames: Tensor,
    positions: Tensor,
    radii: Tensor,
    backgrounds: np.ndarray,
    horizon: int,
    forces: Tensor | None = None,
    stride: int = 1,
) -> tuple[Tensor, Tensor]:
    """Roll ``net`` forward on its own imagined frames.

    frames [B, Tc, C, H, W] and positions [B, Tc, K, 2] of the context; radii [B, K];
    backgrounds uint8 [B, H, W, 3]; forces [B, Tc + horizon, K, 2], the force applied at each
    context and future frame (default none) -> imagined positions [B, horizon, K, 2] and
    frames [B, horizon, C, H, W]. Each look commits the first ``stride`` predicted
    displacements (1: the paper's frame-by-frame imagination; up to the model's horizon: fewer
    looks, no compounding within a stride), renders those frames and shows them, with their
    positions and forces, to the model before the next look: as in training, the step of
    frame t sees the force at frame t and predicts the positions from t + 1 on.
    """
    b, tc, k = positions.shape[:3]
    stride = max(1, min(stride, net.horizon))
    if forces is None:
        forces = positions.new_zeros(b, tc + horizon, k, 2)
    displacements, state = net(frames, positions, forces[:, :tc])
    last, window, track = positions[:, -1], frames, positions
    imagined_positions, imagined_frames = [], []
    done = 0
    while True:
        n = min(stride, horizon - done)
        steps = last[:, None] + displacements[:, -1, :, :n].cumsum(2).transpose(1, 2)
        rendered = [render_positions(backgrounds, steps[:, i], radii, net.arena) for i in range(n)]
        imagined_positions.append(steps)  # [B, n, K, 2]
        imagined_frames.append(torch.stack(rendered, 1))
        done, last = done + n, steps[:, -1]
        if done == horizon:
            break
        window = torch.cat([window, imagined_frames[-1]], 1)[:, -(n + net.history - 1) :]
        track = torch.cat([track, steps], 1)[:, -window.shape[1] :]  # the window's positions
        force = forces[:, tc + done - n : tc + done]
        displacements, state = net(window, track, force, state)
    return torch.cat(imagined_positions, 1), torch.cat(imagined_frames, 1)
