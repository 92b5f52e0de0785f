"""Billiards predictors (Fragkiadaki et al. 2016): glimpses and their anchors, the OC / FC
models, which force drives which step, the weighted loss, imagination, force-conditioned
rollouts and planning, checked against hand computations on toy inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from vidgen.errors import VidgenError
from vidgen.eval.billiards import future_displacements
from vidgen.eval.compare import rollouts
from vidgen.models import FrameCentricPredictor, ObjectCentricPredictor
from vidgen.models.billiards import alexnet_features, glimpses
from vidgen.sim.billiards import (
    BilliardsConfig,
    Table,
    ball_mass,
    draw_table,
    paint_balls,
    run_physics,
)
from vidgen.tasks.billiards import BilliardsTask
from vidgen.tasks.billiards_imagination import erase_balls, find_balls, imagine
from vidgen.tasks.billiards_planning import plan_force

SQUARE = Table(np.array([(0.0, 0.0), (600.0, 0.0), (600.0, 600.0), (0.0, 600.0)]))
TINY = dict(glimpse_size=64, width=0.125, hidden=16, horizon=5)
STEP = 5e4 / (4.0 / 3.0 * math.pi * 2.5**3) * 0.01  # frame displacement of a 5e4 push, r = 25


def adam(params):
    return torch.optim.Adam(params)


def test_glimpses_at_table_edges_pad_white_and_repeat_the_first_frame() -> None:
    frames = torch.rand(1, 3, 3, 8, 10)
    centres = torch.tensor([[[[0.0, 0.0]], [[5.0, 4.0]]]])  # steps 1, 2: a corner, the middle
    crops = glimpses(frames, centres, (8.0, 8.0), 8, history=3)  # 1:1 pixels
    assert crops.shape == (1, 2, 9, 8, 8)
    corner = crops[0, 0]  # step 1: history frames 0, 0, 1; the image's top-left quadrant
    assert (corner[:, :4, :].abs() < 1e-6).all() and (corner[:, :, :4].abs() < 1e-6).all()
    torch.testing.assert_close(corner[6:, 4:, 4:], 1 - frames[0, 1, :, :4, :4])
    torch.testing.assert_close(corner[:3], corner[3:6])  # frame 0 repeated before the start
    torch.testing.assert_close(crops[0, 1, 6:], 1 - frames[0, 2, :, :, 1:9])


def test_glimpse_anchors_by_hand_on_a_moving_pixel() -> None:
    # One dark pixel on white, in row 4 at columns 1, 3, 5 of frames 0, 1, 2 (inverted: a 1).
    frames = torch.ones(1, 3, 1, 8, 8)
    for t, x in enumerate((1, 3, 5)):
        frames[0, t, 0, 4, x] = 0.0
    # A 4x4 crop at 1:1 around integer centre (x, y) samples columns x-2 .. x+1.
    centres = torch.tensor([[1.0, 4.0], [3.0, 4.0], [5.0, 4.0]])[None, :, None]  # [1, 3, 1, 2]
    expected = {"per_frame": torch.zeros(3, 4, 4), "current": torch.zeros(3, 4, 4)}
    expected["per_frame"][:, 2, 2] = 1.0  # every frame around its own pixel: always centred
    expected["current"][1, 2, 0] = 1.0  # around frame 2's pixel (columns 3-6): frame 0's is
    expected["current"][2, 2, 2] = 1.0  # outside, frame 1's at the left edge
    for anchor, crops in expected.items():
        out = glimpses(frames, centres, (4.0, 4.0), 4, history=3, steps=1, anchor=anchor)
        torch.testing.assert_close(out[0, 0], crops)  # [history * C, G, G] of the last step
    # Step 1 (frames 0, 0, 1): per frame, frame 0 repeated before the start, centres with it.
    out = glimpses(frames, centres, (4.0, 4.0), 4, history=3, steps=3, anchor="per_frame")
    torch.testing.assert_close(out[0, 1], expected["per_frame"])


def test_alexnet_trunk_is_torchvisions_with_stacked_inputs() -> None:
    ours, theirs = alexnet_features(12).state_dict(), torchvision.models.AlexNet().features
    theirs = theirs.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        expected = (64, 12, 11, 11) if key == "0.weight" else theirs[key].shape
        assert ours[key].shape == expected


def test_local_pretrained_alexnet_weights_are_inflated_over_the_history(tmp_path) -> None:
    torch.manual_seed(0)
    features = torchvision.models.AlexNet().features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "a.pth")
    net = ObjectCentricPredictor(glimpse_size=64, hidden=8, pretrained=str(tmp_path / "a.pth"))
    conv1 = net.features[0].weight
    torch.testing.assert_close(conv1[:, 9:], features[0].weight / 4)
    torch.testing.assert_close(net.features[3].weight, features[3].weight)


def tiny_net(model: str) -> nn.Module:
    torch.manual_seed(0)
    if model == "fc":
        return FrameCentricPredictor(3, **TINY)
    return ObjectCentricPredictor(**TINY, glimpse_anchor=model.removeprefix("oc_"))


@pytest.mark.parametrize("model", ["oc_per_frame", "oc_current", "fc"])
def test_model_shapes_absent_balls_and_stepwise_equals_whole(model: str) -> None:
    net = tiny_net(model)
    frames, positions = torch.rand(2, 7, 3, 48, 48), torch.rand(2, 7, 3, 2) * 600
    positions[1, :, 2] = float("nan")
    forces = torch.zeros(2, 7, 3, 2)
    forces[:, 0, 0] = 5e4
    whole, _ = net(frames, positions, forces)
    assert whole.shape == (2, 7, 3, 5, 2)
    if model != "fc":
        assert (whole[1, :, 2] == 0).all()
    _, state = net(frames[:, :6], positions[:, :6], forces[:, :6])
    # The last step alone, given its history frames' positions and its own force.
    last, _ = net(frames, positions[:, 3:], forces[:, 6:], state)
    torch.testing.assert_close(last[:, 0], whole[:, 6], atol=1e-5, rtol=1e-4)


def test_unknown_glimpse_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="per_frame or current"):
        ObjectCentricPredictor(**TINY, glimpse_anchor="previous")


@pytest.mark.parametrize("model", ["oc_per_frame", "oc_current", "fc"])
def test_the_force_at_frame_t_enters_step_t_and_no_earlier(model: str) -> None:
    net = tiny_net(model)
    frames, positions = torch.rand(1, 5, 3, 48, 48), torch.rand(1, 5, 2, 2) * 600
    still, pushed = torch.zeros(1, 5, 2, 2), torch.zeros(1, 5, 2, 2)
    pushed[0, 2, 1] = torch.tensor([3e4, -2e4])  # ball 1 pushed at frame 2
    before, _ = net(frames, positions, still)
    after, _ = net(frames, positions, pushed)
    torch.testing.assert_close(after[:, :2], before[:, :2], atol=0, rtol=0)
    assert (after[:, 2] - before[:, 2]).abs().amax() > 1e-4


class StraightLines(nn.Module):
    """An oracle for an open table: the impulse sets the velocity, which then never changes."""

    history, horizon, arena, displacement_scale = 1, 20, 600.0, 1.0

    def forward(self, frames, positions, forces, state=None):
        velocity = torch.zeros_like(positions[:, 0]) if state is None else state
        steps = []
        for t in range(forces.shape[1]):
            velocity = velocity + forces[:, t] / float(ball_mass(25.0)) * 0.01
            steps.append(velocity)
        return torch.stack(steps, 1)[:, :, :, None].expand(-1, -1, -1, self.horizon, -1), velocity


def test_the_step_that_sees_a_force_is_trained_on_the_displacement_it_causes() -> None:
    force = np.array([[5e4, 0.0]])
    tracks = run_physics(
        np.array([[300.0, 300.0]]), np.array([25.0]), SQUARE, force, 8, BilliardsConfig()
    )
    positions = torch.tensor(tracks["positions"], dtype=torch.float32)[None]  # [1, 8, 1, 2]
    target = future_displacements(positions, 20)
    torch.testing.assert_close(target[0, 0, 0, 0], torch.tensor([STEP, 0.0]))  # p1 - p0
    forces = torch.zeros(1, 8, 1, 2)
    forces[0, 0, 0, 0] = 5e4  # as simulate() records it: at frame 0
    task = BilliardsTask(StraightLines(), optimizer=adam)
    batch = {"frames": torch.zeros(1, 8, 3, 8, 8), "objects/positions": positions}
    # The oracle, whose step t adds the force at frame t, is exact only with that alignment.
    assert task.loss({**batch, "objects/forces": forces}) < 1e-9
    late = forces.roll(1, dims=1)  # the force one frame late: step 0 predicts a ball at rest
    assert task.loss({**batch, "objects/forces": late}) > 0.1 * STEP**2


class Fixed(nn.Module):
    """Predicts the displacement (0, 1) for every ball, step and horizon."""

    horizon, arena, displacement_scale = 2, 600.0, 2.0

    def __init__(self, history: int) -> None:
        super().__init__()
        self.history = history

    def forward(self, frames, positions, forces, state=None):
        b, t, k = forces.shape[:3]
        return torch.tensor([0.0, 1.0]).expand(b, t, k, self.horizon, 2), None


def test_loss_weights_short_horizons_more_by_hand() -> None:
    # x = 0, 1, 3: u_1 = 1, u_2 = 2. Targets: step 0 (1, 0), (2, 0); step 1 (2, 0), past the
    # window; step 2 past it. Squared errors of (0, 1) over scale 2: 0.5, 1.25; 1.25.
    positions = torch.tensor([0.0, 1.0, 3.0])[None, :, None, None] * torch.tensor([1.0, 0.0])
    batch = {"frames": torch.zeros(1, 3, 3, 8, 8), "objects/positions": positions}
    w1, w2 = math.exp(-1.0), math.exp(-(2**0.25))  # w_k = exp(-k^(1/4))
    at_start = torch.zeros(1, 3, 1, 2)
    at_start[0, 0, 0] = 1e4
    loss = BilliardsTask(Fixed(history=1), adam).loss({**batch, "objects/forces": at_start})
    hand = (0.5 * w1 + 1.25 * w2 + 1.25 * w1) / (w1 + w2 + w1)
    assert loss.item() == pytest.approx(hand, rel=1e-6)
    # History 2 in a window that does not start with the force: step 0's history is not real.
    task = BilliardsTask(Fixed(history=2), adam)
    assert task.loss({**batch, "objects/forces": torch.zeros(1, 3, 1, 2)}).item() == 1.25
    assert task.loss({**batch, "objects/forces": at_start}).item() == pytest.approx(hand)


def test_two_ranks_average_to_the_one_process_loss(monkeypatch) -> None:
    """DDP averages the ranks' gradients: the ranks' losses must average to the loss of the
    whole batch even when their valid steps differ (3 weighted entries against 1 here)."""
    positions = torch.tensor([0.0, 1.0, 3.0])[None, :, None, None] * torch.tensor([1.0, 0.0])
    at_start, at_rest = torch.zeros(1, 3, 1, 2), torch.zeros(1, 3, 1, 2)
    at_start[0, 0, 0] = 1e4
    ranks = [
        {"frames": torch.zeros(1, 3, 3, 8, 8), "objects/positions": positions,
         "objects/forces": forces}
        for forces in (at_start, at_rest)
    ]  # fmt: skip
    task = BilliardsTask(Fixed(history=2), adam)
    whole = task.loss({key: torch.cat([r[key] for r in ranks]) for key in ranks[0]})
    w1, w2 = math.exp(-1.0), math.exp(-(2**0.25))
    totals = iter([2 * w1 + w2, w1])  # each rank's weight sum, as all_reduce sees them

    def all_reduce(total):
        assert total.item() == pytest.approx(next(totals))
        total.fill_(3 * w1 + w2)

    distributed = {"is_available": lambda: True, "is_initialized": lambda: True,
                   "get_world_size": lambda: 2, "all_reduce": all_reduce}  # fmt: skip
    for name, value in distributed.items():
        monkeypatch.setattr(torch.distributed, name, value)
    per_rank = [task.loss(batch) for batch in ranks]
    assert (per_rank[0] + per_rank[1]).item() / 2 == pytest.approx(whole.item(), rel=1e-6)


def open_table_frame(pos: np.ndarray) -> torch.Tensor:
    image = paint_balls(draw_table(SQUARE, (96, 96), 600.0), pos, np.full(len(pos), 25.0), 600.0)
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def test_imagination_renders_what_it_predicts_at_any_stride() -> None:
    frame = open_table_frame(np.array([[300.0, 300.0]]))[None, None]
    forces = torch.zeros(1, 11, 1, 2)
    forces[0, 0, 0] = torch.tensor([5e4, 0.0])
    start, radii = find_balls(frame, 1, 600.0)
    background = erase_balls(frame[:, 0])
    table = draw_table(SQUARE, (96, 96), 600.0)
    assert np.abs(background[0].astype(int) - table).max() <= 10  # ball and rim are gone
    paths = {}
    for stride in (1, 4, 20):
        paths[stride], frames = imagine(
            StraightLines(), frame, start, radii, background, 10, forces, stride
        )
        seen, _ = find_balls(frames, 1, 600.0)
        torch.testing.assert_close(seen, paths[stride], atol=1.5, rtol=0)
    # The force at the context frame moves the first imagined frame: 10 steps in 10 frames.
    torch.testing.assert_close(paths[1][0, -1, 0, 0], start[0, 0, 0, 0] + 10 * STEP)
    torch.testing.assert_close(paths[4], paths[1])
    torch.testing.assert_close(paths[20], paths[1])


class Recording(StraightLines):
    """The oracle with a 3-frame history that records what each look is shown."""

    history = 3

    def __init__(self) -> None:
        super().__init__()
        self.looks: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def forward(self, frames, positions, forces, state=None):
        self.looks.append((frames.shape[1], positions.clone(), forces.clone()))
        return super().forward(frames, positions, forces, state)


def test_each_imagined_step_sees_its_frames_positions_and_force() -> None:
    frame = open_table_frame(np.array([[300.0, 300.0]]))[None, None]
    start, radii = find_balls(frame, 1, 600.0)
    forces = torch.zeros(1, 7, 1, 2)
    forces[0, 0, 0], forces[0, 3, 0] = torch.tensor([5e4, 0.0]), torch.tensor([0.0, 3e4])
    net = Recording()
    path, _ = imagine(net, frame, start, radii, erase_balls(frame[:, 0]), 6, forces)
    # Frame 0 is the context; the push at frame 3 first moves the ball from frame 3 to 4.
    x = start[0, 0, 0, 0] + STEP * torch.arange(1, 7)
    y = start[0, 0, 0, 1] + 0.6 * STEP * torch.tensor([0, 0, 0, 1, 2, 3])
    torch.testing.assert_close(path[0, :, 0], torch.stack([x, y], -1))
    every_position = torch.cat([start, path], 1)  # [1, 7, 1, 2]: frames 0 .. 6
    assert len(net.looks) == 6
    for t, (frames_seen, positions, force) in enumerate(net.looks):  # look t: from frame t
        first = max(0, t - 2)  # the last 3 frames, or all there are
        assert frames_seen == positions.shape[1] == t + 1 - first
        torch.testing.assert_close(positions, every_position[:, first : t + 1])
        torch.testing.assert_close(force, forces[:, t : t + 1])


def test_rollouts_follow_the_recorded_force() -> None:
    task = BilliardsTask(StraightLines(), optimizer=adam)  # looks for 3 balls
    context = open_table_frame(np.array([[300.0, 300.0]]))[None, None].expand(2, 1, -1, -1, -1)
    forces = torch.zeros(2, 3, 1, 2)  # one ball; forces recorded for 3 frames only
    forces[1, 0, 0] = torch.tensor([5e4, 0.0])  # clip 1: a strong push at the context frame
    batch = {"frames": context, "objects/forces": forces}
    inputs = task.conditioning(batch, 1 + 8)
    future = task.rollout(context, 8, **inputs)
    torch.testing.assert_close(rollouts({"m": task}, batch, 1, 8)["m"], future)
    seen, _ = find_balls(future, 1, 600.0)  # [2, 8, 1, 2]
    start, _ = find_balls(context, 1, 600.0)
    torch.testing.assert_close(seen[0], start[0].expand(8, -1, -1), atol=1.5, rtol=0)
    moved = start[1, 0, 0, 0] + STEP * torch.arange(1, 9)
    torch.testing.assert_close(seen[1, :, 0, 0], moved, atol=1.5, rtol=0)
    with pytest.raises(VidgenError, match="no objects/forces"):
        task.conditioning({"frames": context}, 9)
    with pytest.raises(VidgenError, match="do not fit 1 context frames"):
        task.rollout(context, 8, torch.zeros(2, 1, 4, 2))


def test_planner_picks_the_force_that_reaches_the_target() -> None:
    pos = np.array([[300.0, 300.0], [120.0, 480.0]])
    truth = 5.5e4 * np.array([math.cos(2.2), math.sin(2.2)])
    forces = np.zeros((2, 2))
    forces[0] = truth
    tracks = run_physics(pos, np.array([25.0, 25.0]), SQUARE, forces, 21, BilliardsConfig())
    target = torch.tensor(tracks["positions"][20, 0], dtype=torch.float32)
    plan = plan_force(StraightLines(), open_table_frame(pos), target, num_balls=2)
    assert (plan.path[-1] - target).norm() < 5.0  # within a fifth of a radius
    np.testing.assert_allclose(plan.force.numpy(), truth, rtol=0.05)
    assert len(plan.candidates) == len(plan.finals) == 3 * 64
