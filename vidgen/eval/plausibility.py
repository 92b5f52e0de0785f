"""A plausibility score for generated bouncing-balls videos that needs no pretrained network.

The world draws each ball as a disc of its own saturated colour over black. In every frame
we classify bright pixels to the nearest ball colour, keep the connected blobs of a ball's
size, and call the frame *right* when every ball colour shows exactly one such blob. A step
is *smooth* when every ball's centroid moved at most ``max_step`` (in sides per frame) since
the previous right frame. The score is the fraction of frames that are right and, after the
first, reached by a smooth step: real clips score near 1, noise and smears near 0.
The score judges clips one by one, so a generator that draws one good clip every time
scores well too; ``spread`` (how far the balls' positions vary across clips) exposes that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vidgen.sim.bouncing_balls import BouncingBallsConfig

_WORLD = BouncingBallsConfig()


@dataclass(frozen=True)
class BallSpec:
    """What a rendered ball looks like; defaults follow ``BouncingBallsConfig()``."""

    num_balls: int = _WORLD.num_balls
    colors: tuple[tuple[int, int, int], ...] = _WORLD.colors
    radius: tuple[float, float] = _WORLD.radius  # fraction of the side
    # Speeds reach ~0.04 sides per frame; collisions can raise one ball's speed, so allow 2.5x.
    max_step: float = 2.5 * _WORLD.speed[1]
    min_brightness: int = 128  # the brightest channel of a ball pixel, 0-255
    max_color_distance: float = 100.0  # RGB distance to the nearest ball colour


def detect_balls(frame: np.ndarray, spec: BallSpec = BallSpec()) -> np.ndarray | None:  # noqa: B008
    """uint8 frame [H, W, 3] -> ball centres [K, 2] (x, y in sides), or None when some
    colour shows no ball-sized blob or more than one."""
    h, w = frame.shape[:2]
    palette = np.array([spec.colors[k % len(spec.colors)] for k in range(spec.num_balls)], float)
    pixels = frame.reshape(-1, 3).astype(np.float64)
    distance = np.linalg.norm(pixels[:, None, :] - palette[None], axis=-1)  # HW K
    nearest = distance.argmin(1)
    ball_pixel = (pixels.max(1) >= spec.min_brightness) & (
        distance.min(1) <= spec.max_color_distance
    )
    # Blob areas allowed: a third of the smallest disc up to twice the largest (pixels).
    min_area = math.pi * (spec.radius[0] * min(h, w)) ** 2 / 3
    max_area = 2 * math.pi * (spec.radius[1] * max(h, w)) ** 2
    centres = np.empty((spec.num_balls, 2))
    for k in range(spec.num_balls):
        mask = (ball_pixel & (nearest == k)).reshape(h, w).astype(np.uint8)
        count, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        blobs = np.flatnonzero((areas >= min_area) & (areas <= max_area)) + 1
        if len(blobs) != 1 or (areas > max_area).any():
            return None
        centres[k] = (centroids[blobs[0]] + 0.5) / (w, h)
    return centres


def ball_plausibility(frames: torch.Tensor, spec: BallSpec = BallSpec()) -> dict[str, float]:  # noqa: B008
    """frames [B, T, 3, H, W] in [0, 1] -> {score, right_count, smooth_steps, spread}.

    ``right_count``: fraction of frames with the right balls; ``smooth_steps``: fraction of
    consecutive right frames whose balls all moved at most ``spec.max_step``; ``spread``:
    the standard deviation across clips of each ball's position in the clip's first right
    frame (sides, mean over balls and axes; about 0.23 for uniform positions, 0 when every
    clip is the same).
    """
    video = (frames.detach().float().clamp(0, 1) * 255).round().byte()
    video = video.permute(0, 1, 3, 4, 2).cpu().numpy()  # B T H W C
    right = good = steps = smooth = 0
    first_seen = []  # [K, 2] per clip with a right frame
    for clip in video:
        previous, right_in_clip = None, 0
        for t, frame in enumerate(clip):
            centres = detect_balls(frame, spec)
            if centres is None:
                previous = None
                continue
            right += 1
            if right_in_clip == 0:
                first_seen.append(centres)
            right_in_clip += 1
            if previous is not None:
                steps += 1
                moved_ok = bool(np.linalg.norm(centres - previous, axis=1).max() <= spec.max_step)
                smooth += moved_ok
                good += moved_ok
            elif t == 0:
                good += 1
            previous = centres
    total = video.shape[0] * video.shape[1]
    return {
        "score": good / total,
        "right_count": right / total,
        "smooth_steps": smooth / steps if steps else 0.0,
        "spread": float(np.stack(first_seen).std(0).mean()) if len(first_seen) > 1 else 0.0,
    }
