"""Billiards planning (Fragkiadaki et al. 2016): the planner's answers on fixed seeded problems
with tiny untrained OC and FC models, recorded, so that any change to perception,
imagination, the CEM planner or the problem builder shows here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgen.errors import VidgenError
from vidgen.models import FrameCentricPredictor, ObjectCentricPredictor
from vidgen.sim.billiards import BilliardsConfig
from vidgen.tasks.billiards_planning import (
    RADIUS,
    PlanningProblem,
    plan_problem,
    planning_problem,
)

HORIZON, SIZE = 8, (64, 64)
HELD_OUT = BilliardsConfig(balls=(1, 2), table_size=(450.0, 550.0))
# Per model and problem: the chosen force, its imagined end, the true end after it, and the
# sum of every candidate's imagined end (16 candidates: 8 on the grid, 8 drawn).
RECORDED = {
    "oc": [
        ([-80000.0, -0.0069938], [135.9711, 265.2280], [180.8479, 274.7797], [2166.327, 4242.629]),
        ([-80000.0, -0.0069938], [283.7204, 526.0390], [175.1664, 533.3957], [4532.792, 8416.768]),
        ([-69565.10, 35849.23], [164.1018, 171.6618], [67.6068, 224.0987], [2618.940, 2743.649]),
    ],
    "fc": [
        ([80000.0, 0.0], [130.8392, 279.3274], [224.9766, 274.7797], [2083.219, 4471.622]),
        ([80000.0, 0.0], [278.5894, 540.1392], [370.7360, 533.3957], [4444.365, 8644.689]),
        ([80000.0, 0.0], [158.9647, 185.5766], [250.4217, 180.2798], [2528.674, 2971.617]),
    ],
}


def tiny_net(kind: str) -> torch.nn.Module:
    if kind == "oc":
        torch.manual_seed(0)
        net = ObjectCentricPredictor(
            glimpse_size=64, glimpse_extent=400, width=0.125, hidden=16, horizon=5,
            glimpse_anchor="per_frame",
        )  # fmt: skip
    else:
        torch.manual_seed(1)
        net = FrameCentricPredictor(glimpse_size=64, width=0.125, hidden=16, horizon=5)
    return net.eval()


def problems() -> list[PlanningProblem]:
    """vidgen-plan's problem (2 balls, a given target), then two of the benchmark's (a seed
    stream of tables, 1-2 balls, a target a random force reaches)."""
    given = np.array([300.0, 250.0])
    config = BilliardsConfig(table_size=(500.0, 500.0))
    found = [planning_problem(np.random.default_rng(3), config, 2, given, horizon=HORIZON)]
    rng = np.random.default_rng((2016, 2))
    return found + [planning_problem(rng, HELD_OUT, horizon=HORIZON) for _ in range(2)]


@pytest.mark.parametrize("kind", ["oc", "fc"])
def test_plans_on_fixed_problems_are_the_recorded_ones(kind) -> None:
    torch.set_num_threads(1)
    net = tiny_net(kind)
    for seed, (problem, recorded) in enumerate(zip(problems(), RECORDED[kind], strict=True)):
        plan = plan_problem(net, problem, SIZE, candidates=8, iterations=2, seed=seed, stride=4)
        true_end = problem.outcome(plan.force.double().numpy())[-1, 0]
        force, imagined_end, recorded_true_end, finals_sum = recorded
        assert plan.candidates.shape == plan.finals.shape == (16, 2)
        assert plan.path.shape == (HORIZON, 2)
        np.testing.assert_allclose(plan.force.numpy(), force, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(plan.path[-1].numpy(), imagined_end, rtol=1e-4)
        np.testing.assert_allclose(true_end, recorded_true_end, rtol=1e-4)
        np.testing.assert_allclose(plan.finals.sum(0).numpy(), finals_sum, rtol=1e-4)


def test_problems_have_a_reachable_target_and_balls_that_fit() -> None:
    drawn = problems()
    assert [len(p.radii) for p in drawn] == [2, 2, 1] and all(p.radii[0] == RADIUS for p in drawn)
    for problem in drawn:
        assert problem.table.clearance(problem.positions).min() >= RADIUS
        frame = problem.frame(SIZE)
        assert frame.shape == (3, *SIZE) and frame.min() >= 0 and frame.max() <= 1
        assert problem.outcome(np.zeros(2)).shape == (HORIZON + 1, len(problem.radii), 2)
    np.testing.assert_array_equal(drawn[0].target, [300.0, 250.0])
    for problem in drawn[1:]:
        assert problem.solved_by(problem.target) and problem.horizon == HORIZON
    with pytest.raises(VidgenError, match=r"target \(5, 5\) is not where a ball fits"):
        planning_problem(np.random.default_rng(3), HELD_OUT, 1, np.array([5.0, 5.0]))
