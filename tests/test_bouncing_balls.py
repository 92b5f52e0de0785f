"""Tests for the bouncing-balls world: determinism, physics invariants and rendering."""

import numpy as np
import pytest

from vidgen.sim import WORLDS, BouncingBallsConfig
from vidgen.sim.bouncing_balls import render, simulate

MANY = BouncingBallsConfig(num_balls=6)


@pytest.fixture(scope="module")
def crowded() -> dict[str, np.ndarray]:
    # Tiny frames: these tests are about the physics, not the pixels.
    return simulate(400, 8, seed=7, config=MANY)


def test_registry() -> None:
    assert WORLDS["bouncing_balls"] is simulate


def test_deterministic_for_seed() -> None:
    a, b = simulate(30, 32, seed=5), simulate(30, 32, seed=5)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = simulate(30, 32, seed=6)
    assert not np.array_equal(a["frames"], c["frames"])
    assert not np.array_equal(a["positions"], c["positions"])


def test_shapes_and_dtypes_non_square() -> None:
    out = simulate(12, (48, 80), seed=0, config=BouncingBallsConfig(num_balls=4))
    assert out["frames"].shape == (12, 48, 80, 3) and out["frames"].dtype == np.uint8
    assert out["positions"].shape == (12, 4, 2) and out["positions"].dtype == np.float32
    assert out["velocities"].shape == (12, 4, 2) and out["velocities"].dtype == np.float32
    assert out["radii"].shape == (12, 4) and out["radii"].dtype == np.float32
    assert out["frames"].max() > 0


def test_single_ball_speed_conserved_across_wall_bounces() -> None:
    out = simulate(500, 8, seed=3, config=BouncingBallsConfig(num_balls=1))
    vel = out["velocities"][:, 0].astype(np.float64)
    assert (np.diff(np.sign(vel), axis=0) != 0).any(axis=1).sum() >= 4  # it did bounce
    speed = np.linalg.norm(vel, axis=-1)
    np.testing.assert_allclose(speed, speed[0], rtol=0, atol=1e-6)


def test_kinetic_energy_conserved(crowded: dict[str, np.ndarray]) -> None:
    vel = crowded["velocities"].astype(np.float64)
    mass = crowded["radii"][0].astype(np.float64) ** 2
    speed = np.linalg.norm(vel, axis=-1)
    # Speeds change only in ball-ball collisions, so make sure some happened.
    assert (np.abs(np.diff(speed, axis=0)) > 1e-4).sum() >= 5
    energy = (0.5 * mass * speed**2).sum(axis=-1)
    np.testing.assert_allclose(energy, energy[0], rtol=1e-6, atol=0)


def test_no_overlap_and_inside_box(crowded: dict[str, np.ndarray]) -> None:
    pos = crowded["positions"].astype(np.float64)
    rad = crowded["radii"].astype(np.float64)
    dist = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1)
    i, j = np.triu_indices(pos.shape[1], k=1)
    assert (dist[:, i, j] >= rad[:, i] + rad[:, j] - 1e-6).all()
    assert (pos >= rad[..., None] - 1e-6).all() and (pos <= 1 - rad[..., None] + 1e-6).all()


def test_anti_aliased_edges() -> None:
    out = simulate(5, 64, seed=1, config=BouncingBallsConfig(num_balls=1))
    red = out["frames"][..., 0]  # first colour is (255, 64, 64)
    assert ((red > 0) & (red < 255)).sum() >= 5 * 10


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_centroid_matches_position(size: tuple[int, int]) -> None:
    h, w = size
    out = simulate(60, size, seed=2, config=BouncingBallsConfig(num_balls=1))
    weight = out["frames"][..., 0].astype(np.float64)
    total = weight.sum(axis=(1, 2))
    cy = (weight.sum(axis=2) * np.arange(h)).sum(axis=1) / total
    cx = (weight.sum(axis=1) * np.arange(w)).sum(axis=1) / total
    # Pixel j's centre sits at x = (j + 0.5) / W.
    x, y = out["positions"][:, 0, 0] * w - 0.5, out["positions"][:, 0, 1] * h - 0.5
    assert np.abs(cx - x).max() < 0.5 and np.abs(cy - y).max() < 0.5


def test_render_resolution_independent() -> None:
    out = simulate(10, 32, seed=4)
    colors = np.array(BouncingBallsConfig().colors[:3])
    again = render(out["positions"], out["radii"], colors, (32, 32))
    np.testing.assert_array_equal(again, out["frames"])
    big = render(out["positions"], out["radii"][0], colors, (128, 128))
    # Downsampling the 4x render by box filter lands close to the direct small render.
    small = big.reshape(10, 32, 4, 32, 4, 3).astype(np.float64).mean(axis=(2, 4))
    assert np.abs(small - out["frames"]).mean() < 2.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_frames": 0},
        {"size": 0},
        {"size": (16, -1)},
        {"config": BouncingBallsConfig(num_balls=40)},
        {"config": BouncingBallsConfig(radius=(0.3, 0.6))},
        {"config": BouncingBallsConfig(speed=(0.2, 0.5), substeps=1)},
        {"config": BouncingBallsConfig(num_balls=0)},
    ],
)
def test_invalid_arguments(kwargs: dict) -> None:
    args = {"num_frames": 5, "size": 16, "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        simulate(**args)
