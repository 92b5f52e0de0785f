"""Billiards: the world of Fragkiadaki, Agrawal, Levine & Malik (2016), "Learning Visual
Predictive Models of Physics for Playing Billiards", arXiv:1511.07404 (ICLR 2016).

Like the authors' pyphy-engine: world units are the paper's pixels (a square arena of
``arena`` units holds a table whose walls the balls bounce off), one frame is dt = 0.01 s,
mass = (4/3) pi (r/10)^3, and one impulse at t = 0 sets the cue ball (ball 0) moving. Unlike
it, the impulse's magnitude and direction are drawn independently (pyphy reuses one uniform
draw for both). Physics is exact and event-driven in float64: each frame advances to the
earliest time of impact, reflects (ball-wall) or exchanges normal momentum (ball-ball), and
repeats, so no ball ever overlaps another or leaves the table and, without friction, kinetic
energy is conserved to rounding. Tables are convex (rectangles, or rectangles with chamfered
corners), so a ball only ever meets an edge, never a vertex first.

Tracks use world units; ``velocities[t]`` is the displacement per frame from t to t + 1 absent
collisions. Episodes with fewer balls than ``balls[1]`` pad the missing ones with NaN positions
and zero radii, so every episode of a file has the same track shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Distinct from the red walls and the white cloth, so balls can be found by colour.
BALL_COLORS = np.array(
    [(30, 80, 230), (20, 170, 60), (240, 150, 0), (140, 40, 190), (0, 170, 190), (90, 90, 90)],
    np.uint8,
)
CLOTH, WALL = (255, 255, 255), (200, 30, 30)
MAX_TABLE_VERTICES = 8  # a rectangle with all four corners cut
_MAX_EVENTS = 10_000  # collisions resolved within one frame before giving up
_SHIFT = 4  # cv2 draws with 1/16 px sub-pixel precision


@dataclass(frozen=True)
class BilliardsConfig:
    """World parameters in world units (the paper's pixels) and seconds."""

    balls: tuple[int, int] = (1, 1)  # ball count range per episode
    table: str = "rect"  # rect | poly (rectangle with chamfered corners)
    arena: float = 600.0  # side of the square world rendered into the frame
    table_size: tuple[float, float] = (300.0, 550.0)  # range of each table side
    poly_angles: tuple[float, float] = (30.0, 60.0)  # chamfer wall angles, degrees (choices)
    radius: tuple[float, float] = (25.0, 25.0)
    impulse: tuple[float, float] = (3e4, 8e4)  # force magnitude range on the cue ball
    friction: float = 0.0  # fraction of speed lost per frame (0: the paper's frictionless table)
    dt: float = 0.01  # seconds per frame

    def __post_init__(self) -> None:
        lo, hi = self.balls
        if not 1 <= lo <= hi <= len(BALL_COLORS):
            raise ValueError(f"balls must be a range within 1-{len(BALL_COLORS)}, got {lo}-{hi}")
        if self.table not in ("rect", "poly"):
            raise ValueError(f"table must be rect or poly, got {self.table!r}")
        if not 0.0 <= self.friction < 1.0:
            raise ValueError(f"friction must be in [0, 1), got {self.friction}")


def ball_mass(radius: np.ndarray) -> np.ndarray:
    return 4.0 / 3.0 * np.pi * (np.asarray(radius) / 10.0) ** 3


class Table:
    """A convex polygon: vertices [V, 2]; inside means normals @ x >= offsets for every edge."""

    def __init__(self, vertices: np.ndarray) -> None:
        vertices = np.asarray(vertices, np.float64)
        keep = np.any(vertices != np.roll(vertices, 1, axis=0), axis=1)  # drop padding repeats
        self.vertices = vertices[keep]
        edges = np.roll(self.vertices, -1, axis=0) - self.vertices
        normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        centre = self.vertices.mean(axis=0)
        flip = np.einsum("vd,vd->v", normals, centre - self.vertices) < 0
        self.normals = np.where(flip[:, None], -normals, normals)
        self.offsets = np.einsum("vd,vd->v", self.normals, self.vertices)

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """Distance from each point [..., 2] to the nearest wall (negative outside)."""
        return (points @ self.normals.T - self.offsets).min(axis=-1)

    def padded(self) -> np.ndarray:
        """Vertices padded to MAX_TABLE_VERTICES by repeating the last one."""
        pad = MAX_TABLE_VERTICES - len(self.vertices)
        return np.concatenate([self.vertices, np.repeat(self.vertices[-1:], pad, axis=0)])


def random_table(rng: np.random.Generator, cfg: BilliardsConfig) -> Table:
    """A rectangle with sides drawn from ``table_size`` at a random place in the arena;
    ``poly`` cuts each corner with a wall at one of ``poly_angles`` to the horizontal."""
    w, h = rng.uniform(*cfg.table_size, size=2)
    x0 = rng.uniform(0.0, max(cfg.arena - w, 0.0))
    y0 = rng.uniform(0.0, max(cfg.arena - h, 0.0))
    corners = np.array([(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)])
    if cfg.table == "rect":
        return Table(corners)
    vertices = []
    for corner, (sx, sy) in zip(corners, [(1, 1), (-1, 1), (-1, -1), (1, -1)], strict=True):
        angle = math.radians(rng.choice(cfg.poly_angles))
        cut = rng.uniform(0.15, 0.3) * min(w, h)
        along_x, along_y = cut * math.cos(angle), cut * math.sin(angle)
        a, b = corner + (0, sy * along_y), corner + (sx * along_x, 0)
        vertices += [a, b] if sx * sy > 0 else [b, a]
    return Table(np.array(vertices))


def place_balls(rng: np.random.Generator, table: Table, radii: np.ndarray) -> np.ndarray:
    """Non-overlapping centres on the table, by rejection sampling."""
    lo, hi = table.vertices.min(axis=0), table.vertices.max(axis=0)
    pos = np.zeros((len(radii), 2))
    for k, r in enumerate(radii):
        for _ in range(10_000):
            p = rng.uniform(lo, hi)
            apart = np.hypot(*(pos[:k] - p).T) >= radii[:k] + r + 1.0
            if table.clearance(p) >= r + 1.0 and np.all(apart):
                pos[k] = p
                break
        else:
            raise ValueError("could not place the balls on the table; use fewer or smaller ones")
    return pos


def advance(
    pos: np.ndarray, vel: np.ndarray, radii: np.ndarray, table: Table, duration: float
) -> np.ndarray:
    """Move balls (in place) for ``duration`` with exact elastic collisions; ``vel`` is per
    unit time. Returns collision flags [K, 2]: (hit a wall, hit a ball)."""
    mass, k = ball_mass(radii), len(radii)
    flags = np.zeros((k, 2), bool)
    i_idx, j_idx = np.triu_indices(k, 1)
    remaining = duration
    for _ in range(_MAX_EVENTS):
        # Ball-wall: clearance shrinks at rate -n.v while the ball moves towards the wall.
        rate = vel @ table.normals.T  # [K, V]
        gap = pos @ table.normals.T - table.offsets - radii[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_wall = np.where(rate < 0, np.maximum(gap, 0.0) / -rate, np.inf)
        # Ball-ball: earliest root of |dp + dv t| = r_i + r_j for approaching pairs.
        dp, dv = pos[j_idx] - pos[i_idx], vel[j_idx] - vel[i_idx]
        b, a = np.einsum("pd,pd->p", dp, dv), np.einsum("pd,pd->p", dv, dv)
        c = np.einsum("pd,pd->p", dp, dp) - (radii[i_idx] + radii[j_idx]) ** 2
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.where(c <= 0, 0.0, (-b - np.sqrt(np.maximum(disc, 0.0))) / a)
            t_pair = np.where((b < 0) & (disc >= 0), np.maximum(root, 0.0), np.inf)
        wall_at = np.unravel_index(np.argmin(t_wall), t_wall.shape)
        first_wall = t_wall[wall_at]
        first_pair = t_pair.min() if len(t_pair) else np.inf
        step = min(first_wall, first_pair)
        if step >= remaining:
            pos += vel * remaining
            return flags
        pos += vel * step
        remaining -= step
        if first_wall <= first_pair:
            ball, edge = wall_at
            n = table.normals[edge]
            vel[ball] -= 2.0 * (vel[ball] @ n) * n
            flags[ball, 0] = True
        else:
            p = int(np.argmin(t_pair))
            i, j = i_idx[p], j_idx[p]
            n = (pos[j] - pos[i]) / np.linalg.norm(pos[j] - pos[i])
            closing = (vel[i] - vel[j]) @ n  # > 0 while approaching
            impulse = 2.0 * closing * mass[i] * mass[j] / (mass[i] + mass[j])
            vel[i] -= impulse / mass[i] * n
            vel[j] += impulse / mass[j] * n
            flags[[i, j], 1] = True
    raise RuntimeError(f"more than {_MAX_EVENTS} collisions in one frame")


def run_physics(
    pos: np.ndarray,
    radii: np.ndarray,
    table: Table,
    force: np.ndarray,
    num_frames: int,
    cfg: BilliardsConfig,
) -> dict[str, np.ndarray]:
    """Balls at rest at ``pos`` [K, 2]; the impulse ``force`` [K, 2] hits at t = 0.
    Returns float64 positions, velocities (per frame) [T, K, 2] and collisions [T, K, 2]."""
    k = len(radii)
    pos, vel = pos.astype(np.float64).copy(), force / ball_mass(radii)[:, None] * cfg.dt
    positions, velocities = np.empty((num_frames, k, 2)), np.empty((num_frames, k, 2))
    collisions = np.zeros((num_frames, k, 2), bool)
    for t in range(num_frames):
        positions[t], velocities[t] = pos, vel
        if t < num_frames - 1:
            collisions[t] = advance(pos, vel, radii, table, 1.0)  # time measured in frames
            vel *= 1.0 - cfg.friction
    return {"positions": positions, "velocities": velocities, "collisions": collisions}


def draw_table(table: Table, size: tuple[int, int], arena: float) -> np.ndarray:
    """uint8 [H, W, 3]: white cloth inside the table, red walls outside."""
    h, w = size
    image = np.empty((h, w, 3), np.uint8)
    image[:] = WALL
    cv2.fillPoly(image, [_to_fixed(table.vertices, size, arena)], CLOTH, cv2.LINE_AA, _SHIFT)
    return image


def paint_balls(
    background: np.ndarray, positions: np.ndarray, radii: np.ndarray, arena: float
) -> np.ndarray:
    """A copy of ``background`` [H, W, 3] with ball k (positions [K, 2], radii [K] in world
    units; NaN positions are skipped) drawn anti-aliased in BALL_COLORS[k]."""
    image = background.copy()
    size = image.shape[:2]
    for k, (p, r) in enumerate(zip(positions, radii, strict=True)):
        if not np.all(np.isfinite(p)) or r <= 0:
            continue
        centre = tuple(int(v) for v in _to_fixed(p[None], size, arena)[0])
        radius = round(r * size[1] / arena * (1 << _SHIFT))
        color = tuple(int(c) for c in BALL_COLORS[k % len(BALL_COLORS)])
        cv2.circle(image, centre, radius, color, -1, cv2.LINE_AA, _SHIFT)
    return image


def _to_fixed(points: np.ndarray, size: tuple[int, int], arena: float) -> np.ndarray:
    """World units -> cv2 fixed-point pixel coordinates (integer i is the centre of pixel i)."""
    scale = np.array([size[1], size[0]]) / arena
    return np.rint((points * scale - 0.5) * (1 << _SHIFT)).astype(np.int32)


def simulate(
    num_frames: int,
    size: int | tuple[int, int],
    seed: int,
    config: BilliardsConfig = BilliardsConfig(),  # noqa: B008 (frozen, so shared is safe)
) -> dict[str, np.ndarray]:
    """One episode: frames uint8 [T, H, W, 3] of the whole arena, and float32 tracks
    positions, velocities, forces [T, K, 2], collisions [T, K, 2] (wall, ball), radii [T, K]
    and table [T, MAX_TABLE_VERTICES, 2], K = ``config.balls[1]``."""
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    rng = np.random.default_rng(seed)
    table = random_table(rng, config)
    count, k_max = int(rng.integers(config.balls[0], config.balls[1] + 1)), config.balls[1]
    radii = rng.uniform(*config.radius, size=count)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    magnitude = rng.uniform(*config.impulse)  # independent of the angle, unlike pyphy-engine
    force = np.zeros((count, 2))
    force[0] = magnitude * np.array([np.cos(angle), np.sin(angle)])
    tracks = run_physics(place_balls(rng, table, radii), radii, table, force, num_frames, config)
    background = draw_table(table, hw, config.arena)
    frames = np.stack(
        [paint_balls(background, p, radii, config.arena) for p in tracks["positions"]]
    )

    def padded(x: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((num_frames, k_max, *x.shape[2:]), fill, np.float32)
        out[:, :count] = x
        return out

    return {
        "frames": frames,
        "positions": padded(tracks["positions"], np.nan),
        "velocities": padded(tracks["velocities"], np.nan),
        "forces": padded(np.concatenate([force[None], np.zeros((num_frames - 1, count, 2))]), 0),
        "collisions": padded(tracks["collisions"], 0),
        "radii": padded(np.broadcast_to(radii, (num_frames, count)), 0),
        "table": np.broadcast_to(table.padded(), (num_frames, MAX_TABLE_VERTICES, 2)).astype(
            np.float32
        ),
    }
