"""Billiards (Fragkiadaki et al. 2016): exact physics, the world's data, trajectory metrics,
training and the vidgen-plan command (the models themselves: test_billiards_models.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import compose_train, experiments_of, training_losses
from data_prep.synthetic import generate_dataset
from vidgen.cli.plan import main as plan_main
from vidgen.cli.train import train
from vidgen.data.dataset import ClipDataset
from vidgen.errors import VidgenError
from vidgen.eval.billiards import TrajectoryMetrics, future_displacements, trajectory_errors
from vidgen.models import ConstantVelocity, ObjectCentricPredictor
from vidgen.sim import WORLDS
from vidgen.sim.billiards import (
    BilliardsConfig,
    Table,
    advance,
    ball_mass,
    draw_table,
    paint_balls,
    run_physics,
    simulate,
)
from vidgen.tasks.billiards import BilliardsTask
from vidgen.tasks.billiards_imagination import find_balls

SQUARE = Table(np.array([(0.0, 0.0), (600.0, 0.0), (600.0, 600.0), (0.0, 600.0)]))
TINY_NET = [
    "model.net.glimpse_size=64",
    "model.net.width=0.125",
    "model.net.hidden=16",
    "model.eval_horizon=6",
]


def kinetic_energy(radii: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    return 0.5 * (ball_mass(radii) * (velocities**2).sum(-1)).sum(-1)


def test_energy_is_conserved_without_friction_over_1000_steps() -> None:
    rng = np.random.default_rng(0)
    radii = np.array([25.0, 20.0, 30.0, 25.0])
    pos = np.array([[100.0, 100.0], [300.0, 320.0], [450.0, 150.0], [200.0, 480.0]])
    force = np.zeros((4, 2))
    force[0] = [6e4, 4.5e4]
    force[2] = rng.uniform(-3e4, 3e4, 2)
    tracks = run_physics(pos, radii, SQUARE, force, 1001, BilliardsConfig())
    energy = kinetic_energy(radii, tracks["velocities"])
    assert tracks["collisions"][..., 1].sum() > 10 and tracks["collisions"][..., 0].sum() > 10
    assert np.abs(energy / energy[0] - 1).max() < 1e-6


def test_head_on_equal_mass_collision_exchanges_velocities() -> None:
    pos, vel = np.array([[200.0, 300.0], [300.0, 300.0]]), np.array([[7.0, 0.0], [0.0, 0.0]])
    flags = advance(pos, vel, np.array([25.0, 25.0]), SQUARE, 10.0)  # contact after 50/7 frames
    np.testing.assert_allclose(vel, [[0.0, 0.0], [7.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(pos[0], [200.0 + 50.0, 300.0], atol=1e-9)  # stopped at contact
    np.testing.assert_allclose(pos[1], [300.0 + 7.0 * (10.0 - 50.0 / 7.0), 300.0], atol=1e-9)
    assert flags[:, 1].all() and not flags[:, 0].any()


def test_wall_reflection_is_specular() -> None:
    pos, vel = np.array([[550.0, 300.0]]), np.array([[10.0, 5.0]])
    advance(pos, vel, np.array([25.0]), SQUARE, 3.0)  # hits x = 575 after 2.5 frames
    np.testing.assert_allclose(vel, [[-10.0, 5.0]])
    np.testing.assert_allclose(pos, [[575.0 - 5.0, 315.0]])


@pytest.mark.parametrize("table", ["rect", "poly"])
def test_balls_never_overlap_or_leave_the_table(table: str) -> None:
    config = BilliardsConfig(balls=(5, 5), table=table, radius=(15.0, 35.0), impulse=(8e4, 8e4))
    for seed in range(3):
        run = simulate(300, 16, seed=seed, config=config)
        pos, radii = run["positions"].astype(np.float64), run["radii"][0].astype(np.float64)
        table_shape = Table(run["table"][0])
        gap = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1) - radii[:, None] - radii
        assert gap[:, ~np.eye(5, dtype=bool)].min() > -1e-3  # float32 tracks
        assert (table_shape.clearance(pos) - radii).min() > -1e-3
        assert run["collisions"].sum() > 0


def test_friction_slows_the_ball_down() -> None:
    force = np.array([[5e4, 0.0]])
    tracks = run_physics(
        np.array([[100.0, 300.0]]),
        np.array([25.0]),
        SQUARE,
        force,
        30,
        BilliardsConfig(friction=0.05),
    )
    speed = np.linalg.norm(tracks["velocities"][:, 0], axis=-1)
    np.testing.assert_allclose(speed[1:] / speed[:-1], 0.95)


def test_simulate_records_tracks_padded_to_the_most_balls() -> None:
    assert WORLDS["billiards"] is simulate
    config = BilliardsConfig(balls=(1, 3), table="poly")
    runs = [simulate(12, 48, seed=s, config=config) for s in range(6)]
    counts = {int((r["radii"][0] > 0).sum()) for r in runs}
    assert len(counts) > 1
    for run in runs:
        k = int((run["radii"][0] > 0).sum())
        assert run["frames"].shape == (12, 48, 48, 3) and run["positions"].shape == (12, 3, 2)
        assert (
            np.isnan(run["positions"][:, k:]).all() and np.isfinite(run["positions"][:, :k]).all()
        )
        assert run["forces"][1:].sum() == 0 and np.abs(run["forces"][0, 0]).sum() > 0
        magnitude = np.linalg.norm(run["forces"][0, 0])
        assert 3e4 <= magnitude <= 8e4
        speed = magnitude / ball_mass(run["radii"][0, 0]) * 0.01
        assert np.linalg.norm(run["velocities"][0, 0]) == pytest.approx(speed, rel=1e-5)


def test_prep_world_options_reach_the_file(tmp_path) -> None:
    generate_dataset(
        tmp_path / "d",
        world="billiards",
        episodes=4,
        frames=6,
        size=32,
        options={"balls": "2-3", "table": "poly"},
    )
    item = ClipDataset(tmp_path / "d" / "train.h5", length=6)[0]
    assert item["objects/positions"].shape == (6, 3, 2)
    assert item["objects/collisions"].shape == (6, 3, 2)
    with pytest.raises(VidgenError, match="has no option 'walls'"):
        generate_dataset(tmp_path / "e", world="billiards", episodes=3, options={"walls": "3"})
    with pytest.raises(VidgenError, match="table must be rect or poly"):
        generate_dataset(tmp_path / "e", world="billiards", episodes=3, options={"table": "hex"})
    assert not (tmp_path / "e").exists() or not list((tmp_path / "e").glob("*.h5"))


def test_find_balls_inverts_the_renderer() -> None:
    pos, radii = np.array([[123.4, 456.7], [300.0, 200.0]]), np.array([25.0, 25.0])
    frame = paint_balls(draw_table(SQUARE, (96, 96), 600.0), pos, radii, 600.0)
    frames = torch.from_numpy(frame).permute(2, 0, 1)[None, None].float() / 255
    found, found_radii = find_balls(frames, 3, 600.0)
    np.testing.assert_allclose(found[0, 0, :2].numpy(), pos, atol=1.5)  # a quarter pixel
    assert torch.isnan(found[0, 0, 2]).all()
    np.testing.assert_allclose(found_radii[0, :2].numpy(), 25.0, atol=2.0)


def test_trajectory_errors_and_constant_velocity_by_hand() -> None:
    positions = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]], [[2.0, 1.0]]])[None]
    target = future_displacements(positions, 2)  # [1, 4, 1, 2, 2]
    torch.testing.assert_close(target[0, 1, 0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.isnan(target[0, 3]).all()
    guess, _ = ConstantVelocity(horizon=2)(None, positions, None)
    errors = trajectory_errors(guess[0, 1, 0], target[0, 1, 0])  # (1, 0) twice vs the truth
    torch.testing.assert_close(errors["position"], torch.tensor([0.0, math.sqrt(2)]))
    torch.testing.assert_close(errors["angle"], torch.tensor([0.0, 90.0]))
    metric = TrajectoryMetrics(2)
    metric.update(guess[0, 1:3, 0], target[0, 1:3, 0], torch.tensor([True, False]))
    # Row t=1 misses by 0 then sqrt(2); row t=2 by sqrt(2), then has no truth (window's end).
    torch.testing.assert_close(
        metric.compute()["position"], torch.tensor([0.5, 1.0]).double() * math.sqrt(2)
    )
    torch.testing.assert_close(
        metric.compute()["position_near_collision"], torch.tensor([0.0, math.sqrt(2)]).double()
    )


def test_paper_experiments_are_the_paper_setup(tmp_path) -> None:
    for model in ("oc", "fc"):
        cfg = compose_train([f"experiment=billiards_{model}"], tmp_path)
        net = cfg.model.net
        assert (net.glimpse_size, net.history, net.horizon, net.width) == (128, 4, 20, 1.0)
        assert cfg.data.generate.world == "billiards" and cfg.data.generate.episodes == 10_000
    assert compose_train(["experiment=billiards_oc"], tmp_path).model.net.glimpse_extent == 512
    for experiment in ("billiards_oc", "billiards_oc_cpu"):  # the released data layer's crops
        net = compose_train([f"experiment={experiment}"], tmp_path).model.net
        assert net.glimpse_anchor == "per_frame"


@pytest.fixture(scope="module")
def billiards_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("billiards")
    generate_dataset(
        out, world="billiards", episodes=10, frames=24, size=64, seed=0, options={"balls": "1-2"}
    )
    return out


def tiny_training(data, tmp_path, experiment="billiards_oc_cpu", extra=()):
    return compose_train(
        [
            f"experiment={experiment}",
            f"data.root={data}",
            "data.length=24",
            "data.num_workers=0",
            "data.batch_size=2",
            "data.val_windows=2",
            "logger=csv",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            *TINY_NET,
            *extra,
        ],
        tmp_path,
    )


@pytest.mark.parametrize(
    "experiment", experiments_of("billiards_oc") + experiments_of("billiards_fc")
)
def test_fast_dev_run_of_every_experiment(experiment, billiards_data, tmp_path) -> None:
    cfg = tiny_training(billiards_data, tmp_path, experiment, ["+trainer.fast_dev_run=true"])
    metrics = train(cfg)
    assert np.isfinite(metrics["test/position_error"]) and metrics["test/cv_position_error"] > 0
    assert metrics["test/copy_last_mse"] > 0


def test_training_lowers_the_loss(billiards_data) -> None:
    torch.manual_seed(0)
    net = ObjectCentricPredictor(
        glimpse_size=64, glimpse_extent=400, width=0.125, hidden=32, glimpse_anchor="per_frame"
    )
    task = BilliardsTask(net, optimizer=lambda params: torch.optim.Adam(params, lr=3e-3))
    items = [ClipDataset(billiards_data / "train.h5", length=24)[i] for i in range(2)]
    batch = {k: torch.stack([i[k][:12] for i in items]) for k in items[0] if k != "index"}
    batch["frames"] = batch["frames"].permute(0, 1, 4, 2, 3).float() / 255
    losses = training_losses(task, batch, 20)
    assert losses[-1] < 0.3 * losses[0]


def test_vidgen_plan_writes_a_video_and_reports(billiards_data, tmp_path, capsys) -> None:
    cfg = tiny_training(
        billiards_data,
        tmp_path,
        extra=[
            "trainer.max_epochs=1",
            "test=false",
            "+trainer.limit_train_batches=1",
            "+trainer.limit_val_batches=1",
        ],
    )
    train(cfg)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    out = tmp_path / "plan.mp4"
    code = plan_main(
        [
            f"ckpt={ckpt}",
            "--balls",
            "2",
            "--target",
            "300,250",
            "--out",
            str(out),
            "--candidates",
            "16",
            "--iterations",
            "1",
        ]
    )
    assert code == 0 and out.stat().st_size > 0
    assert "true simulator" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        plan_main([f"ckpt={ckpt}", "--target", "300", "--out", str(out)])
    assert exit_info.value.code == 2
