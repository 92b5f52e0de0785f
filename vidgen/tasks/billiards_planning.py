"""Planning with a billiards predictor (Fragkiadaki et al. 2016, arXiv:1511.07404): choose
the push that sends the cue ball to a target by imagining candidate pushes.

``planning_problem`` builds the scenario (a random table, balls at rest, a target) that
vidgen-plan, benchmarks/billiards.py and the tests all plan on; ``plan_force`` searches the
push by the cross-entropy method over direction and magnitude, each candidate judged by
where the model imagines the ball after ``horizon`` frames (see billiards_imagination).
A problem is solved when the true simulator puts the ball within two radii of the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from vidgen.errors import VidgenError
from vidgen.sim.billiards import (
    BilliardsConfig,
    Table,
    draw_table,
    paint_balls,
    place_balls,
    random_table,
    run_physics,
)
from vidgen.tasks.billiards_imagination import erase_balls, find_balls, imagine

PLAN_STRIDE = 5  # frames the planner imagines per look (see plan_force)
RADIUS = 25.0  # of every ball in a planning problem, world units


@dataclass
class PlanningProblem:
    """Balls at rest on ``table`` (positions [K, 2], radii [K], world units) and the
    ``target`` [2] that ball 0 should reach ``horizon`` frames after one push. ``config``
    holds the physics (dt, friction), the range of push magnitudes and the arena."""

    table: Table
    positions: np.ndarray
    radii: np.ndarray
    target: np.ndarray
    horizon: int
    config: BilliardsConfig

    def background(self, size: tuple[int, int]) -> np.ndarray:
        """The empty table, uint8 [H, W, 3]."""
        return draw_table(self.table, size, self.config.arena)

    def frame(self, size: tuple[int, int]) -> Tensor:
        """The balls at rest, float [3, H, W] in [0, 1]: what the planner looks at."""
        image = paint_balls(self.background(size), self.positions, self.radii, self.config.arena)
        return torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)

    def outcome(self, force: np.ndarray) -> np.ndarray:
        """True positions [horizon + 1, K, 2] after ``force`` [2] pushes ball 0."""
        forces = np.zeros((len(self.radii), 2))
        forces[0] = force
        tracks = run_physics(
            self.positions, self.radii, self.table, forces, self.horizon + 1, self.config
        )
        return tracks["positions"]

    def solved_by(self, end: np.ndarray) -> bool:
        """Whether ball 0 ending at ``end`` [2] is within two radii of the target."""
        return bool(np.linalg.norm(end - self.target) <= 2 * self.radii[0])


def random_force(rng: np.random.Generator, config: BilliardsConfig) -> np.ndarray:
    """A push [2] in a uniform direction with a magnitude uniform over ``config.impulse``."""
    angle, magnitude = rng.uniform(0, 2 * np.pi), rng.uniform(*config.impulse)
    return magnitude * np.array([np.cos(angle), np.sin(angle)])


def planning_problem(
    rng: np.random.Generator,
    config: BilliardsConfig,
    balls: int | None = None,
    target: np.ndarray | None = None,
    horizon: int = 20,
) -> PlanningProblem:
    """A random table of ``config`` with ``balls`` balls of radius RADIUS at rest (default: a
    count drawn from ``config.balls``) and ``target`` in world units (default: where a random
    push takes ball 0 in ``horizon`` frames, so that the problem has a solution)."""
    table = random_table(rng, config)
    count = int(rng.integers(config.balls[0], config.balls[1] + 1)) if balls is None else balls
    radii = np.full(count, RADIUS)
    if target is not None and table.clearance(np.asarray(target, np.float64)) < RADIUS:
        corners = ", ".join(f"({x:.0f}, {y:.0f})" for x, y in table.vertices)
        raise VidgenError(
            f"target ({target[0]:g}, {target[1]:g}) is not where a ball fits on the table "
            f"(corners {corners})."
        )
    positions = place_balls(rng, table, radii)
    problem = PlanningProblem(table, positions, radii, np.zeros(2), horizon, config)
    if target is None:
        problem.target = problem.outcome(random_force(rng, config))[-1, 0]
    else:
        problem.target = np.asarray(target, np.float64)
    return problem


@dataclass
class Plan:
    """The planner's answer: the chosen force [2], its imagined path [horizon, 2], and every
    candidate force [N, 2] with its imagined final position [N, 2]."""

    force: Tensor
    path: Tensor
    candidates: Tensor
    finals: Tensor


def plan_problem(
    net: nn.Module, problem: PlanningProblem, size: tuple[int, int], **options: object
) -> Plan:
    """``plan_force`` on ``problem`` seen at frame ``size`` (H, W); ``options`` are its
    search settings (candidates, iterations, elite, seed, stride)."""
    return plan_force(
        net,
        problem.frame(size),
        torch.tensor(problem.target, dtype=torch.float32),
        len(problem.radii),
        horizon=problem.horizon,
        impulse=problem.config.impulse,
        **options,
    )


@torch.no_grad()
def plan_force(
    net: nn.Module,
    frame: Tensor,
    target: Tensor,
    num_balls: int,
    ball: int = 0,
    horizon: int = 20,
    impulse: tuple[float, float] = (3e4, 8e4),
    candidates: int = 64,
    iterations: int = 3,
    elite: int = 8,
    seed: int = 0,
    stride: int = PLAN_STRIDE,
) -> Plan:
    """The force on ``ball`` whose imagined position ``horizon`` frames later is closest to
    ``target`` (world units), by the cross-entropy method over direction and magnitude.

    ``frame`` [C, H, W] shows the balls at rest. The first population is a grid (directions x
    4 magnitudes over ``impulse``); each later one is drawn around the ``elite`` best so far.
    Imagination looks every ``stride`` frames (at most the model's horizon). Committing the
    whole horizon from the still first frame leaves the model blind to the motion it set off,
    while looking every frame compounds the model's own errors; benchmarks/billiards.py
    chooses the stride on validation tables.
    """
    positions, radii = find_balls(frame[None, None], num_balls, net.arena)
    if not positions[0, 0, ball].isfinite().all():
        raise ValueError(f"ball {ball} is not in the frame")
    background = erase_balls(frame[None])
    generator = torch.Generator().manual_seed(seed)
    angles = torch.arange(candidates // 4) * (2 * math.pi / (candidates // 4))
    magnitudes = torch.linspace(*impulse, 4)
    params = torch.cartesian_prod(angles, magnitudes)  # [N, 2]: (angle, magnitude)
    tried, finals, paths = [], [], []
    for iteration in range(iterations):
        if iteration:
            best = torch.cat(tried)[torch.cat(finals).sub(target).norm(dim=-1).argsort()[:elite]]
            mean_direction = torch.stack([best[:, 0].cos(), best[:, 0].sin()]).mean(1)
            centre = torch.stack(
                [torch.atan2(mean_direction[1], mean_direction[0]), best[:, 1].mean()]
            )
            offset = (best[:, 0] - centre[0] + math.pi) % (2 * math.pi) - math.pi
            spread = torch.stack([offset.std(), best[:, 1].std()]).clamp_min(1e-3)
            params = centre + spread * torch.randn(candidates, 2, generator=generator)
            params[:, 1] = params[:, 1].clamp(*impulse)
        n = len(params)
        forces = positions.new_zeros(n, horizon + 1, num_balls, 2)
        forces[:, 0, ball] = _force_vectors(params)
        path, _ = imagine(
            net,
            frame[None, None].expand(n, -1, -1, -1, -1),
            positions.expand(n, -1, -1, -1),
            radii.expand(n, -1),
            np.repeat(background, n, axis=0),
            horizon,
            forces,
            stride,
        )
        tried.append(params)
        finals.append(path[:, -1, ball])
        paths.append(path[:, :, ball])
    params, finals_all, paths_all = torch.cat(tried), torch.cat(finals), torch.cat(paths)
    choice = finals_all.sub(target).norm(dim=-1).argmin()
    vectors = _force_vectors(params)
    return Plan(vectors[choice], paths_all[choice], vectors, finals_all)


def _force_vectors(params: Tensor) -> Tensor:
    """(angle, magnitude) rows [N, 2] -> force vectors [N, 2]."""
    return params[:, 1:] * torch.stack([params[:, 0].cos(), params[:, 0].sin()], -1)
