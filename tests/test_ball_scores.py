"""Ball scores of bouncing-balls videos: detection against rendered centres, motion and
coverage against hand computations, the four reference populations (real clips, copy-last
clips, a generator that always draws one clip, noise) and a world read from its dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_prep.synthetic import generate_dataset
from vidgen.errors import VidgenError
from vidgen.eval.ball_scores import (
    BallSpec,
    ball_tracks,
    coverage,
    detect_balls,
    motion,
    population_scores,
)
from vidgen.eval.generative import ball_spec_of
from vidgen.sim.bouncing_balls import BouncingBallsConfig, render, simulate

RGB = np.array([[255, 64, 64], [64, 255, 64], [64, 128, 255]])


def real_clips(count: int, world: BouncingBallsConfig = BouncingBallsConfig(), seed: int = 0):  # noqa: B008
    clips = np.stack([simulate(8, 32, seed * 1000 + i, world)["frames"] for i in range(count)])
    return torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255


def test_detect_balls_finds_rendered_centres():
    positions = np.array([[[0.2, 0.3], [0.7, 0.7], [0.5, 0.15]]])
    frame = render(positions, np.array([0.1, 0.1, 0.1]), RGB, (32, 32))[0]
    np.testing.assert_allclose(detect_balls(frame), positions[0], atol=0.5 / 32)
    assert detect_balls(np.zeros_like(frame)) is None
    two_reds = frame.copy()
    two_reds[0:4, 28:32] = (255, 64, 64)  # a second red blob
    assert detect_balls(two_reds) is None


def test_motion_counts_ball_moves_at_world_speed():
    # Ball 0 moves 0.03 per frame (in range), ball 1 stays (out), ball 2 jumps 0.2 (out).
    steps = np.array([[0.03, 0.0], [0.0, 0.0], [0.0, 0.2]])
    start = np.array([[0.2, 0.2], [0.5, 0.5], [0.8, 0.2]])
    positions = np.stack([start + t * steps for t in range(3)])
    video = render(positions, np.full(3, 0.1), RGB, (32, 32))
    frames = torch.from_numpy(video).permute(0, 3, 1, 2)[None].float() / 255
    assert motion(ball_tracks(frames, BallSpec()), BallSpec()) == pytest.approx(1 / 3)


def test_coverage_against_a_hand_computation():
    reference = np.arange(7, dtype=float)[:, None]  # each point's nearest neighbour is 1 away
    # A sample at 0.2 lies within radius 1 of points 0 and 1 only; standardising scales both.
    assert coverage(reference, np.array([[0.2]]), k=1) == pytest.approx(2 / 7)
    assert coverage(reference, reference + 3.5, k=1) == pytest.approx(4 / 7)  # points 3-6
    assert coverage(reference, np.empty((0, 0)), k=1) == 0.0


def test_scores_order_the_four_reference_populations():
    real = real_clips(96)
    populations = {
        "real": real,
        "copy_last": real[:, :1].expand_as(real),
        "one_clip": real[:1].expand_as(real),
        "noise": torch.rand_like(real),
    }
    scores = population_scores(populations, BallSpec())
    assert all(0 <= v <= 1 for s in scores.values() for k, v in s.items() if k != "spread")
    truth, frozen, single, noise = (scores[k] for k in populations)
    assert truth["plausibility"] == 1.0 and truth["motion"] > 0.95 and truth["coverage"] > 0.85
    assert truth["combined"] > 0.9
    # Frozen balls are right but never move; one clip is right and moves but covers nothing.
    assert frozen["plausibility"] == 1.0 and frozen["motion"] == 0 and frozen["combined"] == 0
    assert single["motion"] > 0.9 and single["coverage"] < 0.15 and single["spread"] < 1e-6
    assert single["combined"] < 0.5 * truth["combined"]
    assert noise["plausibility"] < 0.05 and noise["combined"] < 0.05


def test_shuffled_frames_are_right_but_not_smooth():
    real = real_clips(6)
    shuffled = real[:, torch.randperm(8, generator=torch.Generator().manual_seed(0))]
    scores = population_scores({"real": real, "shuffled": shuffled}, BallSpec())["shuffled"]
    assert scores["right_count"] == 1.0 and scores["smooth_steps"] < 0.6


def test_spec_comes_from_the_dataset_world(tmp_path):
    colors = ((255, 220, 64), (220, 64, 255))
    generate_dataset(
        tmp_path / "two", episodes=3, frames=8, size=32, options={"num_balls": 2, "colors": colors}
    )
    spec = ball_spec_of(tmp_path / "two" / "test.h5")
    assert spec.num_balls == 2 and spec.colors == colors and spec.speed == (0.02, 0.04)
    world = BouncingBallsConfig(num_balls=2, colors=colors)
    real = real_clips(12, world)
    assert population_scores({"real": real}, spec)["real"]["plausibility"] == 1.0
    assert population_scores({"real": real}, BallSpec())["real"]["right_count"] == 0.0

    generate_dataset(tmp_path / "pusher", world="pusher", episodes=3, frames=4, size=32)
    with pytest.raises(VidgenError, match="holds pusher world"):
        ball_spec_of(tmp_path / "pusher" / "test.h5")
