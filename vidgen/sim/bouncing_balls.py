"""Bouncing balls: the classic Sutskever, Hinton & Taylor (2009) video benchmark, in colour.

N balls move in the unit square [0, 1]^2 and bounce elastically off the walls and off each
other. Masses are proportional to r^2 (equal area density); collisions exchange momentum along
the line of centres exactly as for 2-D discs. Physics runs in float64, ``substeps`` steps per
frame; overlapping pairs get the elastic impulse and are pushed apart, so balls never
interpenetrate and kinetic energy is conserved to rounding error.

State is continuous, so an episode renders at any size: ``render`` draws discs over black with
an analytic soft edge, coverage = clip(r - d + 0.5 px, 0, 1), combining overlaps by per-channel
max. x runs along the width, y down the height; pixel (i, j) is centred at ((j + 0.5) / W,
(i + 0.5) / H). The square fills the frame, so non-square frames stretch balls into ellipses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_PLACE_TRIES = 1000  # rejection-sampling draws per ball before restarting the whole placement
_PLACE_RESTARTS = 100
_MAX_FILL = 0.4  # disc area fraction cap; random sequential placement jams near 0.55
_RELAX_ITERS = 50  # overlap-resolution sweeps per substep (one almost always suffices)
_GAP = 1e-12  # separate a hair beyond contact so rounding cannot leave a sliver of overlap
_CHUNK = 1 << 21  # pixels (frames x H x W) rendered at once, bounding temporary memory


@dataclass(frozen=True)
class BouncingBallsConfig:
    """World parameters: lengths are fractions of the side, speeds are sides per frame."""

    num_balls: int = 3
    radius: tuple[float, float] = (0.08, 0.12)  # range, drawn per ball
    speed: tuple[float, float] = (0.02, 0.04)  # range, drawn per ball, random direction
    colors: tuple[tuple[int, int, int], ...] = (
        (255, 64, 64),
        (64, 255, 64),
        (64, 128, 255),
        (255, 220, 64),
        (220, 64, 255),
        (64, 230, 230),
    )  # cycled over balls
    substeps: int = 4  # physics steps per frame


def _as_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or min(hw) <= 0:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return int(hw[0]), int(hw[1])


def _validate(num_frames: int, cfg: BouncingBallsConfig) -> None:
    (r_lo, r_hi), (s_lo, s_hi), k = cfg.radius, cfg.speed, cfg.num_balls
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if k < 1 or cfg.substeps < 1 or not cfg.colors:
        raise ValueError("num_balls and substeps must be >= 1 and colors non-empty")
    if not 0 < r_lo <= r_hi < 0.5:
        raise ValueError(f"radius range must satisfy 0 < lo <= hi < 0.5, got {cfg.radius}")
    if not 0 <= s_lo <= s_hi:
        raise ValueError(f"speed range must satisfy 0 <= lo <= hi, got {cfg.speed}")
    if k * math.pi * r_hi**2 > _MAX_FILL:
        raise ValueError(f"{k} balls of radius up to {r_hi} do not fit (fill > {_MAX_FILL})")
    # Energy bounds any ball's speed after collisions; a pair must not close by 2 r_lo in one
    # substep, or the overlap could be resolved through the wrong side (tunnelling).
    if s_hi * math.sqrt(k) * r_hi / r_lo / cfg.substeps >= r_lo:
        raise ValueError("speeds too high for the radii: raise substeps or lower speed")


def _place(rng: np.random.Generator, rad: np.ndarray) -> np.ndarray:
    """Non-overlapping centres inside the box by rejection sampling."""
    pos = np.zeros((len(rad), 2))
    for _ in range(_PLACE_RESTARTS):
        for i, r in enumerate(rad):
            for _ in range(_PLACE_TRIES):
                p = rng.uniform(r, 1.0 - r, size=2)
                if np.all(np.hypot(*(pos[:i] - p).T) >= rad[:i] + r):
                    pos[i] = p
                    break
            else:
                break  # no room for ball i given the earlier ones: start over
        else:
            return pos
    raise ValueError("could not place the balls without overlap; use fewer or smaller balls")


def _walls(pos: np.ndarray, vel: np.ndarray, rad: np.ndarray) -> None:
    """Mirror positions and velocities that crossed a wall (exact for straight-line motion)."""
    lo, hi = rad[:, None], 1.0 - rad[:, None]
    below, above = pos < lo, pos > hi
    pos[:] = np.where(below, 2 * lo - pos, np.where(above, 2 * hi - pos, pos))
    vel[:] = np.where(below, np.abs(vel), np.where(above, -np.abs(vel), vel))


def _collide(pos: np.ndarray, vel: np.ndarray, rad: np.ndarray, mass: np.ndarray) -> None:
    """Elastic impulses and mass-weighted separation for every overlapping pair."""
    lo, hi, sum_r = rad[:, None], 1.0 - rad[:, None], rad[:, None] + rad[None, :]
    for _ in range(_RELAX_ITERS):
        dist = np.linalg.norm(pos[None, :] - pos[:, None], axis=-1)
        pairs = np.argwhere(np.triu(dist < sum_r, k=1))
        if len(pairs) == 0:
            return
        for i, j in pairs:  # sequential: an earlier pair may have moved a ball already
            delta = pos[j] - pos[i]
            d = math.hypot(*delta)
            overlap = rad[i] + rad[j] - d
            if overlap <= 0:
                continue
            n = delta / d if d > 0 else np.array([1.0, 0.0])
            wi, wj = mass[j] / (mass[i] + mass[j]), mass[i] / (mass[i] + mass[j])
            approach = (vel[j] - vel[i]) @ n
            if approach < 0:  # only closing pairs bounce; separating ones are just pushed apart
                vel[i] += 2 * wi * approach * n
                vel[j] -= 2 * wj * approach * n
            # Mass-weighted push (keeps the centre of mass). If a wall blocks one ball, the other
            # moves on to contact; otherwise a light ball pinned to a wall converges slowly.
            want_i, want_j = pos[i] - (overlap + _GAP) * wi * n, pos[j] + (overlap + _GAP) * wj * n
            pi, pj = np.clip(want_i, lo[i], hi[i]), np.clip(want_j, lo[j], hi[j])
            delta = pj - pi
            d = math.hypot(*delta)
            if d < rad[i] + rad[j]:
                reach = (rad[i] + rad[j] + _GAP) * (delta / d if d > 0 else n)
                if np.array_equal(pj, want_j):
                    pj = np.clip(pi + reach, lo[j], hi[j])
                else:
                    pi = np.clip(pj - reach, lo[i], hi[i])
            pos[i], pos[j] = pi, pj


def simulate(
    num_frames: int,
    size: int | tuple[int, int],
    seed: int,
    config: BouncingBallsConfig = BouncingBallsConfig(),  # noqa: B008 (frozen, so shared is safe)
) -> dict[str, np.ndarray]:
    """Simulate and render one episode; frame 0 shows the initial state.

    ``size`` is an int or (height, width). Returns uint8 ``frames`` [T, H, W, 3] and float32
    ``positions`` [T, K, 2] (x, y in [0, 1]), ``velocities`` [T, K, 2] (sides per frame) and
    ``radii`` [T, K]. Ball k has colour ``config.colors[k % len(config.colors)]``.
    """
    hw = _as_hw(size)
    _validate(num_frames, config)
    k, rng = config.num_balls, np.random.default_rng(seed)
    rad = rng.uniform(*config.radius, size=k)
    pos = _place(rng, rad)
    angle, speed = rng.uniform(0.0, 2 * np.pi, size=k), rng.uniform(*config.speed, size=k)
    vel = speed[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    mass, dt = rad**2, 1.0 / config.substeps
    positions, velocities = np.empty((num_frames, k, 2)), np.empty((num_frames, k, 2))
    for t in range(num_frames):
        positions[t], velocities[t] = pos, vel
        for _ in range(config.substeps if t < num_frames - 1 else 0):
            pos += vel * dt
            _walls(pos, vel, rad)
            _collide(pos, vel, rad, mass)
    colors = np.array([config.colors[i % len(config.colors)] for i in range(k)], np.uint8)
    return {
        "frames": render(positions, rad, colors, hw),
        "positions": positions.astype(np.float32),
        "velocities": velocities.astype(np.float32),
        "radii": np.broadcast_to(rad, (num_frames, k)).astype(np.float32),
    }


def render(
    positions: np.ndarray, radii: np.ndarray, colors: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Draw anti-aliased balls: positions [T, K, 2], radii [K] or [T, K], colors [K, 3] (0-255),
    size (H, W) -> uint8 frames [T, H, W, 3]."""
    h, w = _as_hw(size)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[-1] != 2:
        raise ValueError(f"positions must be [T, K, 2], got shape {pos.shape}")
    t_all, k = pos.shape[:2]
    rad = np.broadcast_to(np.asarray(radii, dtype=np.float64), (t_all, k))
    cols = np.asarray(colors, dtype=np.float32)
    if cols.shape != (k, 3):
        raise ValueError(f"colors must be [{k}, 3], got shape {cols.shape}")
    frames = np.zeros((t_all, h, w, 3), np.uint8)
    xs, ys = np.arange(w, dtype=np.float32) + 0.5, np.arange(h, dtype=np.float32) + 0.5
    step = max(1, _CHUNK // (h * w))
    for t0 in range(0, t_all, step):
        sl = slice(t0, t0 + step)
        out = np.zeros((len(pos[sl]), h, w, 3), np.float32)
        for b in range(k):
            # Ellipse semi-axes in pixels; both equal r * side when the frame is square.
            ax = (rad[sl, b] * w).astype(np.float32)[:, None, None]
            ay = (rad[sl, b] * h).astype(np.float32)[:, None, None]
            u = (xs[None, None, :] - (pos[sl, b, 0] * w).astype(np.float32)[:, None, None]) / ax
            v = (ys[None, :, None] - (pos[sl, b, 1] * h).astype(np.float32)[:, None, None]) / ay
            rho = np.sqrt(u * u + v * v)
            # First-order signed distance (rho - 1) / |grad rho| in pixels; exact d - r for a
            # circle. At the very centre the gradient vanishes, but coverage there is 1 anyway.
            grad = np.sqrt((u / ax) ** 2 + (v / ay) ** 2)
            with np.errstate(divide="ignore", invalid="ignore"):
                sdf = np.where(grad > 0, (rho - 1) * rho / grad, -np.inf)
            cov = np.clip(0.5 - sdf, 0.0, 1.0)
            np.maximum(out, cov[..., None] * cols[b], out=out)
        frames[sl] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return frames
