"""Weight-free scores of generated bouncing-balls videos: plausibility, motion and coverage.

The world (``vidgen.sim.bouncing_balls``) draws each ball as a disc of its own saturated
colour over black and moves it at a speed drawn from a known range. Frame by frame we classify
bright pixels to the nearest ball colour and keep the connected blobs of a ball's size; a
frame is *right* when every ball colour shows exactly one such blob. Three scores follow:

- plausibility: the fraction of frames that are right and, after the first, reached by a
  smooth step (no ball moved more than ``max_step`` since the previous right frame);
- motion: of the ball moves between consecutive right frames, the fraction whose speed lies in
  the world's range (widened for centroid noise and collisions): frozen balls score 0;
- coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
  Models", ICML): the fraction of reference clips whose k-nearest-neighbour ball, in the space
  of trajectory features, holds at least one sample. A clip's feature is every ball's position,
  velocity and speed at its first step between right frames, standardised by the reference. Two
  sets drawn from one distribution score about 1 - 2^-k; a generator that draws one clip
  every time covers about k of the reference clips.

``combined`` is their geometric mean: high only when all three are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import cv2
import numpy as np
import torch

from vidgen.sim.bouncing_balls import BouncingBallsConfig

_WORLD = BouncingBallsConfig()
COVERAGE_NEIGHBOURS = 5
# Tracks per clip: for each frame, ball centres [K, 2] (x, y in sides) or None.
Tracks = list[list[np.ndarray | None]]


@dataclass(frozen=True)
class BallSpec:
    """What a rendered ball looks like and how fast it moves; defaults follow the world's."""

    num_balls: int = _WORLD.num_balls
    colors: tuple[tuple[int, int, int], ...] = _WORLD.colors
    radius: tuple[float, float] = _WORLD.radius  # fraction of the side
    speed: tuple[float, float] = _WORLD.speed  # sides per frame
    min_brightness: int = 128  # the brightest channel of a ball pixel, 0-255
    max_color_distance: float = 100.0  # RGB distance to the nearest ball colour

    @classmethod
    def from_world(cls, config: Mapping[str, object]) -> BallSpec:
        """The spec of a world config (``BouncingBallsConfig`` fields, e.g. from a dataset)."""
        names = {"num_balls", "colors", "radius", "speed"}
        kwargs = {f.name: config[f.name] for f in fields(cls) if f.name in names & set(config)}
        for key in ("radius", "speed"):
            if key in kwargs:
                kwargs[key] = tuple(float(v) for v in kwargs[key])
        if "colors" in kwargs:
            kwargs["colors"] = tuple(tuple(int(c) for c in rgb) for rgb in kwargs["colors"])
        return cls(**kwargs)

    @property
    def max_step(self) -> float:
        """The largest plausible move per frame: collisions can speed a ball up, so 2.5x."""
        return 2.5 * self.speed[1]

    @property
    def min_step(self) -> float:
        """The smallest plausible move per frame: half the slowest speed, for centroid noise
        and the rare ball that a collision nearly stops."""
        return 0.5 * self.speed[0]


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


def ball_tracks(frames: torch.Tensor, spec: BallSpec) -> Tracks:
    """frames [B, T, 3, H, W] in [0, 1] -> per clip, per frame, the detected centres."""
    video = (frames.detach().float().clamp(0, 1) * 255).round().byte()
    video = video.permute(0, 1, 3, 4, 2).cpu().numpy()  # B T H W C
    return [[detect_balls(frame, spec) for frame in clip] for clip in video]


def _moves(clip: list[np.ndarray | None]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(centres, displacement [K, 2]) for each pair of consecutive right frames."""
    return [
        (a, b - a)
        for a, b in zip(clip[:-1], clip[1:], strict=True)
        if a is not None and b is not None
    ]


def plausibility(tracks: Tracks, spec: BallSpec) -> dict[str, float]:
    """{plausibility, right_count, smooth_steps}: see the module docstring."""
    good = right = steps = smooth = 0
    for clip in tracks:
        previous = None
        for t, centres in enumerate(clip):
            if centres is None:
                previous = None
                continue
            right += 1
            if previous is not None:
                steps += 1
                moved_ok = bool(np.linalg.norm(centres - previous, axis=1).max() <= spec.max_step)
                smooth += moved_ok
                good += moved_ok
            elif t == 0:
                good += 1
            previous = centres
    total = sum(len(clip) for clip in tracks)
    return {
        "plausibility": good / total,
        "right_count": right / total,
        "smooth_steps": smooth / steps if steps else 0.0,
    }


def motion(tracks: Tracks, spec: BallSpec) -> float:
    """The fraction of ball moves between consecutive right frames at the world's speeds."""
    speeds = [np.linalg.norm(step, axis=1) for clip in tracks for _, step in _moves(clip)]
    if not speeds:
        return 0.0
    speed = np.concatenate(speeds)
    return float(((speed >= spec.min_step) & (speed <= spec.max_step)).mean())


def trajectory_features(tracks: Tracks) -> np.ndarray:
    """[N', 5K]: each ball's (x, y, dx, dy, speed) at the first move of every clip that has
    one. Speed gets its own axis: its narrow range makes a frozen ball stand out."""
    firsts = [moves[0] for moves in map(_moves, tracks) if moves]
    if not firsts:
        return np.empty((0, 0))
    return np.stack(
        [
            np.concatenate([c, d, np.linalg.norm(d, axis=1, keepdims=True)], 1).ravel()
            for c, d in firsts
        ]
    )


def coverage(reference: np.ndarray, samples: np.ndarray, k: int = COVERAGE_NEIGHBOURS) -> float:
    """Naeem et al.'s coverage of ``reference`` [N, D] by ``samples`` [M, D] (D may be 0
    when no clip has a feature), after standardising both by the reference."""
    if len(samples) == 0 or len(reference) <= k:
        return 0.0
    mean, std = reference.mean(0), reference.std(0) + 1e-8
    ref, fake = (reference - mean) / std, (samples - mean) / std
    to_ref = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
    radius = np.sort(to_ref, axis=1)[:, k]  # column 0 is the point itself
    nearest_sample = np.linalg.norm(ref[:, None] - fake[None], axis=-1).min(1)
    return float((nearest_sample < radius).mean())


def spread(tracks: Tracks) -> float:
    """Std across clips of each ball's position in the clip's first right frame (sides, mean
    over balls and axes): about 0.23 for uniform positions, 0 when every clip is the same."""
    firsts = [
        next(c for c in clip if c is not None)
        for clip in tracks
        if any(c is not None for c in clip)
    ]
    return float(np.stack(firsts).std(0).mean()) if len(firsts) > 1 else 0.0


def combined(values: Mapping[str, float]) -> float:
    """The geometric mean of plausibility, motion and coverage."""
    return (values["plausibility"] * values["motion"] * values["coverage"]) ** (1 / 3)


def population_scores(
    clips: Mapping[str, torch.Tensor], spec: BallSpec
) -> dict[str, dict[str, float]]:
    """Scores of every clip set against ``clips["real"]``, [N, T, 3, H, W] each.

    Coverage needs a reference apart from what it judges: the even real clips are the
    reference, the odd ones score as ``real`` and every other set's first N // 2 clips are
    judged against the same reference. Plausibility and motion use every clip of a set.
    """
    tracks = {name: ball_tracks(videos, spec) for name, videos in clips.items()}
    reference = tracks["real"][0::2]
    judged = len(tracks["real"][1::2])
    reference_features = trajectory_features(reference)
    scores = {}
    for name, clip_tracks in tracks.items():
        candidates = clip_tracks[1::2] if name == "real" else clip_tracks[:judged]
        values = plausibility(clip_tracks, spec)
        values["motion"] = motion(clip_tracks, spec)
        values["coverage"] = coverage(reference_features, trajectory_features(candidates))
        values["spread"] = spread(clip_tracks)
        values["combined"] = (values["plausibility"] * values["motion"] * values["coverage"]) ** (
            1 / 3
        )
        scores[name] = values
    return scores
