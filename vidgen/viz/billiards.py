"""Billiards videos: imagined beside true trajectories, colour-coded by time as in the figures
of Fragkiadaki et al. (2016), and the planner's candidates, choice and target."""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4  # cv2 sub-pixel bits


def _pixels(points: np.ndarray, scale: float) -> np.ndarray:
    """World units [..., 2] -> cv2 fixed-point coordinates at ``scale`` pixels per unit."""
    return np.rint((np.asarray(points) * scale - 0.5) * (1 << _SHIFT)).astype(np.int32)


def time_colors(steps: int) -> np.ndarray:
    """[steps, 3] uint8 RGB from blue (first) to red (last): the figures' time code."""
    ramp = np.linspace(0, 255, max(steps, 2)).astype(np.uint8)[:steps, None]
    return cv2.applyColorMap(ramp, cv2.COLORMAP_JET)[:, 0, ::-1].copy()


def draw_trails(
    frames: np.ndarray, positions: np.ndarray, arena: float, upscale: int = 4
) -> np.ndarray:
    """uint8 frames [T, H, W, 3] upscaled, each with every ball's path so far (positions
    [T, K, 2], world units) drawn as segments coloured by time."""
    t_all, h, w = frames.shape[:3]
    scale = w * upscale / arena
    size = (w * upscale, h * upscale)
    big = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_NEAREST) for f in frames])
    colors = time_colors(t_all)
    points = _pixels(np.nan_to_num(positions, nan=-1e6), scale)
    present = np.isfinite(positions).all(-1)
    for t in range(1, t_all):
        for k in range(positions.shape[1]):
            if present[t - 1, k] and present[t, k]:
                color = tuple(int(c) for c in colors[t])
                a, b = tuple(points[t - 1, k]), tuple(points[t, k])
                if a == b:  # a ball at rest leaves no trail
                    continue
                for image in big[t:]:
                    cv2.line(image, a, b, color, 2, cv2.LINE_AA, _SHIFT)
    return big


def side_by_side(
    true_frames: np.ndarray,
    true_positions: np.ndarray,
    imagined_frames: np.ndarray,
    imagined_positions: np.ndarray,
    arena: float,
    upscale: int = 4,
) -> np.ndarray:
    """[T, H', 2 W' + gap, 3]: truth with its trails (left) beside the imagination (right)."""
    left = draw_trails(true_frames, true_positions, arena, upscale)
    right = draw_trails(imagined_frames, imagined_positions, arena, upscale)
    gap = np.full((*left.shape[:2], 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=2)


def plan_frames(
    frames: np.ndarray,
    positions: np.ndarray,
    candidate_finals: np.ndarray,
    chosen_path: np.ndarray,
    target: np.ndarray,
    tolerance: float,
    arena: float,
    upscale: int = 4,
) -> np.ndarray:
    """The true outcome of the chosen force (frames [T, H, W, 3], positions [T, K, 2]) with
    every candidate's imagined end point (grey dots), the chosen imagined path (black) and the
    target with its success radius (green)."""
    out = draw_trails(frames, positions, arena, upscale)
    scale = frames.shape[2] * upscale / arena
    dot = round(2 * upscale / 4 * (1 << _SHIFT))
    ring = round(tolerance * scale * (1 << _SHIFT))
    for image in out:
        for point in _pixels(candidate_finals, scale):
            cv2.circle(image, tuple(point), dot, (120, 120, 120), -1, cv2.LINE_AA, _SHIFT)
        path = _pixels(chosen_path, scale)
        cv2.polylines(image, [path], False, (0, 0, 0), 1, cv2.LINE_AA, _SHIFT)
        centre = tuple(_pixels(target, scale))
        cv2.circle(image, centre, ring, (0, 160, 0), 2, cv2.LINE_AA, _SHIFT)
        cv2.drawMarker(image, tuple(int(v) >> _SHIFT for v in centre), (0, 160, 0))
    return out
