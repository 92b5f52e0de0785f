"""Two-stream VGAN: shapes at paper and small sizes, composition, init, losses, one manual
optimization step, the experiments (fast_dev_run, simulated DDP, checkpoint rebuild), FVD's
Frechet distance against closed forms, the ball scores in vidgen-compare, and
stabilization of a clip shifted by known homographies."""

from __future__ import annotations

import math

import av
import cv2
import hydra
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader

from conftest import compose_train, experiments_of
from data_prep.stabilize import Stabilizer
from vidgen.cli.compare import compare
from vidgen.cli.prep import main as prep_main
from vidgen.cli.rollout import render_rollout
from vidgen.cli.train import CONFIG_DIR, train
from vidgen.data import ClipDataset, open_clips
from vidgen.errors import VidgenError
from vidgen.eval.ball_scores import BallSpec, population_scores
from vidgen.eval.fvd import FVDProtocol, I3DEmbedding, frechet_distance, fvd, gaussian_statistics
from vidgen.eval.generative import generative_scores
from vidgen.models.vgan import (
    FutureGenerator,
    VideoDiscriminator,
    VideoGenerator,
    VideoParts,
    vgan_depth,
)
from vidgen.sim.bouncing_balls import simulate
from vidgen.tasks.vgan import VGANFutureTask, VGANTask

EXPERIMENTS = sorted(set(experiments_of("vgan") + experiments_of("vgan_future")))
# Shrink any VGAN experiment to the tiny 32x32 dataset: 8 frames, narrow layers.
SMALL = [
    "data.length=8",
    "model.generator.frames=8",
    "model.generator.size=32",
    "model.generator.channels=4",
    "model.discriminator.channels=4",
]


def adam(params):
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


def small_task(frames: int = 8, size: int = 16) -> VGANTask:
    return VGANTask(
        VideoGenerator(frames, size, channels=4), VideoDiscriminator(frames, size, 4), adam
    )


def convs(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]


def test_paper_generator_and_discriminator_shapes():
    with torch.device("meta"):  # shapes only: paper-size weights are never computed
        g, d = VideoGenerator().eval(), VideoDiscriminator().eval()
        parts = g(torch.randn(1, 100))
        logits = d(parts.video)
    layers = convs(g.decoder.foreground)
    assert [m.out_channels for m in layers] == [512, 256, 128, 64]
    assert layers[0].kernel_size == (2, 4, 4) and layers[1].stride == (2, 2, 2)
    assert [m.out_channels for m in convs(g.decoder.background)] == [512, 256, 128, 64]
    assert [m.out_channels for m in convs(d)] == [64, 128, 256, 512, 1]
    assert convs(d)[-1].kernel_size == (2, 4, 4)
    assert parts.video.shape == parts.foreground.shape == parts.background.shape
    assert parts.video.shape == (1, 32, 3, 64, 64) and parts.mask.shape == (1, 32, 1, 64, 64)
    assert logits.shape == (1,)


def test_conditional_paper_shapes_and_wider_discriminator():
    with torch.device("meta"):
        g, d = FutureGenerator().eval(), VideoDiscriminator(channels=128).eval()
        logits = d(g(torch.rand(1, 3, 64, 64)).video)
    assert [m.out_channels for m in convs(g.encoder)] == [128, 256, 512, 1024]
    fg = convs(g.decoder.foreground)
    assert fg[0].kernel_size == (2, 1, 1) and [m.out_channels for m in fg] == [1024, 512, 256, 128]
    assert [m.out_channels for m in convs(d)] == [128, 256, 512, 1024, 1]
    assert logits.shape == (1,)


@pytest.mark.parametrize(("frames", "size"), [(16, 32), (8, 32), (4, 8)])
def test_small_sizes(frames, size):
    g, d = VideoGenerator(frames, size, channels=4), VideoDiscriminator(frames, size, 4)
    video = g(torch.randn(2, 100)).video
    assert video.shape == (2, frames, 3, size, size) and d(video).shape == (2,)
    assert FutureGenerator(frames, size, 4)(torch.rand(2, 3, size, size)).video.shape == video.shape
    with pytest.raises(ValueError, match="multiple of"):
        vgan_depth(frames + 1, size)
    with pytest.raises(ValueError, match="4 times a power of two"):
        vgan_depth(frames, size + 4)


def test_composition_and_mask_range():
    torch.manual_seed(0)
    v, f, b, m = VideoGenerator(8, 16, channels=4)(torch.randn(3, 100))
    torch.testing.assert_close(v, m * f + (1 - m) * b)
    assert m.min() >= 0 and m.max() <= 1 and v.abs().max() <= 1
    assert torch.equal(b, b[:, :1].expand_as(b))  # one background for all frames
    # Compositing really switches streams: m = 1 gives f, m = 0 gives b.
    assert not torch.allclose(f, b)


def test_init_is_the_released_one():
    d = VideoDiscriminator(8, 16, 8)
    weights = torch.cat([m.weight.flatten() for m in convs(d)])
    assert abs(weights.std().item() - 0.01) < 1e-3 and all(
        m.bias.abs().max() == 0 for m in convs(d)
    )
    gammas = torch.cat([m.weight for m in d.modules() if isinstance(m, torch.nn.BatchNorm3d)])
    assert abs(gammas.mean().item() - 1) < 0.01 and 0.01 < gammas.std().item() < 0.03


def test_mask_penalty_and_first_frame_loss_values():
    task = small_task()
    video = torch.zeros(2, 8, 3, 16, 16)
    mask = torch.linspace(0, 1, 2 * 8 * 16 * 16).view(2, 8, 1, 16, 16)
    parts = VideoParts(video, video, video, mask)
    assert task.generator_penalty(parts, video).item() == pytest.approx(0.1 * 0.5)
    future = VGANFutureTask(FutureGenerator(8, 16, 4), VideoDiscriminator(8, 16, 4), adam)
    real = torch.full_like(video, 0.25)  # first frame off by 0.25 everywhere
    assert future.generator_penalty(parts, real).item() == pytest.approx(10 * 0.25)
    future.mask_penalty = 0.1
    assert future.generator_penalty(parts, real).item() == pytest.approx(2.5 + 0.05)


def clips_loader(frames: int, size: int, count: int = 8) -> DataLoader:
    clips = np.stack([simulate(frames, size, s)["frames"] for s in range(count)])
    video = torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255
    return DataLoader([{"frames": v} for v in video], batch_size=4)


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_one_manual_step_changes_both_networks():
    task = small_task(8, 16)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    quiet_trainer(max_steps=2, limit_val_batches=0).fit(task, clips_loader(8, 16))
    assert task.trainer.global_step == 2  # one D and one G optimizer step
    for prefix in ("generator.", "discriminator."):
        changed = [
            k
            for k in before
            if k.startswith(prefix)
            and k.endswith("weight")
            and not torch.equal(before[k], task.state_dict()[k])
        ]
        assert changed, f"{prefix} did not move"
    assert set(task.trainer.callback_metrics) >= {"train/loss_d", "train/loss_g"}


def test_future_rollout_chains_past_the_generator_length():
    task = VGANFutureTask(FutureGenerator(4, 8, 4), VideoDiscriminator(4, 8, 4), adam).eval()
    frames = torch.rand(2, 3, 3, 8, 8)
    with torch.no_grad():
        out = task.rollout(frames, horizon=7)
        one = task.rollout(frames, horizon=3)
    assert out.shape == (2, 7, 3, 8, 8) and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out[:, :3], one)  # the first chunk does not depend on horizon
    assert task.eval_horizon == 3 and task.eval_context == 1


def test_user_mistakes(tmp_path, tiny_dataset, tiny_overrides):
    task = small_task(8, 16)
    with pytest.raises(VidgenError, match="do not fit this VGAN"):
        task.check_frame_shape((3, 32, 32))
    with pytest.raises(VidgenError, match="set data.length=8"):
        task.real_videos(torch.rand(1, 5, 3, 16, 16))
    cfg = compose_train(["experiment=vgan_bouncing", *tiny_overrides], tmp_path)  # 32x32 data
    cfg.model.generator.size = 16
    with pytest.raises(VidgenError, match="do not fit this VGAN"):
        train(cfg)


def test_paper_recipes(tmp_path):
    golf = compose_train(["experiment=vgan_golf"], tmp_path)
    assert (golf.model.generator.frames, golf.model.generator.size) == (32, 64)
    assert golf.model.optimizer.lr == 2e-4 and list(golf.model.optimizer.betas) == [0.5, 0.999]
    assert golf.model.mask_penalty == 0.1 and golf.data.batch_size == 64 and golf.seed == 0
    future = compose_train(["experiment=vgan_future_golf"], tmp_path)
    assert future.model.discriminator.channels == 128 and future.data.batch_size == 32
    assert (future.model.first_frame_weight, future.model.mask_penalty) == (10.0, 0.0)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_dev_run_of_every_experiment(experiment, tmp_path, tiny_overrides):
    cfg = compose_train(
        [f"experiment={experiment}", *tiny_overrides, *SMALL, "+trainer.fast_dev_run=true"],
        tmp_path,
    )
    metrics = train(cfg)
    assert all(math.isfinite(v) for v in metrics.values())
    if "future" in experiment:
        assert metrics["test/copy_last_mse"] > 0 and "test/mse" in metrics
    else:
        assert 0 < metrics["test/d_real"] < 1


def test_future_checkpoint_rebuilds_and_logs_parts(tmp_path, tiny_overrides):
    cfg = compose_train(
        [
            "experiment=vgan_future_golf",
            *tiny_overrides,
            *SMALL,
            "trainer.max_epochs=1",
            "test=false",
        ],
        tmp_path,
    )
    train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    task = hydra.utils.instantiate(ckpt["vidgen"]["model"])
    task.load_state_dict(ckpt["state_dict"])
    assert (
        isinstance(task, VGANFutureTask)
        and task.rollout(torch.rand(1, 1, 3, 32, 32), 9).shape[1] == 9
    )
    logged = {p.name for p in tmp_path.glob("**/samples/epoch_000_*.png")}
    assert logged == {f"epoch_000_{n}.png" for n in ("video", "foreground", "background", "mask")}
    assert list(tmp_path.glob("**/samples/epoch_000.mp4"))


def compose_command(name: str, overrides: list[str]):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def test_samples_render_and_compare_scores_them(tmp_path, tiny_dataset, tiny_overrides, capsys):
    run = tmp_path / "run"
    overrides = [*tiny_overrides, *SMALL, "trainer.max_epochs=1", "test=false"]
    train(compose_train(["experiment=vgan_bouncing", *overrides], run))
    ckpt = run / "checkpoints" / "last.ckpt"
    written = {p.name for p in run.glob("**/samples/epoch_000*")}  # by callbacks=gan's media
    parts = ("video", "foreground", "background", "mask")
    assert written == {"epoch_000.mp4"} | {f"epoch_000_{n}.png" for n in parts}

    out = tmp_path / "samples.mp4"
    args = [f"ckpt={ckpt}", f"out={out}", "clips=3", "frames=true", "upscale=1"]
    render_rollout(compose_command("rollout", args))
    with av.open(str(out)) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    # 8 frames; 3 samples side by side; video, foreground, background and mask stacked.
    assert len(frames) == 8 and frames[0].shape == (4 * 32, 3 * 32, 3)
    assert out.with_suffix(".png").exists()

    base = [f"ckpts=[{ckpt}]", "names=[vgan]", f"data.root={tiny_dataset}", "progress=false"]
    base += ["context=2", "horizon=6"]
    with pytest.raises(VidgenError, match="scored on their samples only"):
        compare(compose_command("compare", [*base, f"out={tmp_path / 'refused'}"]))
    report = tmp_path / "report"
    compare(compose_command("compare", [*base, f"out={report}", "ball_scores=true"]))
    table = (report / "generative.md").read_text().splitlines()[2:]
    rows = {line.split("|")[1].strip(): line for line in table}
    assert set(rows) == {"real", "copy_last", "vgan"}
    windows = ClipDataset(tiny_dataset / "test.h5", 8, mode="unique")
    real = windows.batch(range(len(windows)))["frames"]
    expected = population_scores({"real": real}, BallSpec())["real"]["combined"]
    assert rows["real"].startswith(f"| real | {expected:.4g} |")
    page = (report / "report.html").read_text()
    assert "Generated clips" in page and 'src="clips_2.png"' in page
    assert all((report / f"clips_{i}.png").exists() for i in range(3))


def test_ddp_simulated_on_cpu(tmp_path, tiny_overrides):
    cfg = compose_train(
        [
            "experiment=vgan_bouncing",
            *tiny_overrides,
            *SMALL,
            "trainer=ddp_sim",
            "trainer.devices=2",  # after tiny_overrides' devices=1
            "trainer.max_epochs=1",
            "callbacks=none",
            "test=false",
        ],
        tmp_path,
    )
    train(cfg)  # the D step leaves G unused: DDP must be told, or this raises


# --- FVD -------------------------------------------------------------------------------


def test_frechet_distance_closed_forms():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = 5.0 + (a + b - 2 * (a * b).sqrt()).sum().item()  # diagonal: per-axis terms
    assert frechet_distance(mu1, a.diag(), mu2, b.diag()) == pytest.approx(expected)
    # Non-commuting case: S1 = c I, S2 = R diag(b) R^T -> tr sqrt(S1 S2) = sqrt(c) sum sqrt(b).
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    s2 = rotation @ b.diag() @ rotation.T
    expected = 3 * 2.0 + b.sum().item() - 2 * math.sqrt(2.0) * b.sqrt().sum().item()
    assert frechet_distance(mu1, 2.0 * torch.eye(3), mu1, s2) == pytest.approx(expected)
    assert frechet_distance(mu1, s2, mu1, s2) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_from_samples():
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, 2, generator=rng, dtype=torch.float64)
    y = torch.randn(200_000, 2, generator=rng, dtype=torch.float64) * torch.tensor([2.0, 1.0]) + 1
    # N(0, I) vs N((1, 1), diag(4, 1)): 2 + (1 + 4 - 4) + (1 + 1 - 2) = 3.
    value = frechet_distance(*gaussian_statistics(x), *gaussian_statistics(y))
    assert value == pytest.approx(3.0, abs=0.05)


class MeanColourI3D(torch.nn.Module):
    """Stands in for I3D: per-channel means and stds of [B, 3, T, 224, 224] clips."""

    def forward(self, x: torch.Tensor, rescale: bool, resize: bool, return_features: bool):
        assert x.shape[1:] == (3, 16, 224, 224) and x.min() >= -1 and not rescale and not resize
        return torch.cat([x.mean((2, 3, 4)), x.std((2, 3, 4))], dim=1)


def test_fvd_uses_a_local_torchscript_file_only(tmp_path):
    with pytest.raises(VidgenError, match="do not exist; pass the path of a local"):
        I3DEmbedding(tmp_path / "i3d_torchscript.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(VidgenError, match="not a TorchScript I3D file"):
        I3DEmbedding(tmp_path / "junk.pt")
    torch.jit.script(MeanColourI3D()).save(str(tmp_path / "i3d.pt"))
    embed, protocol = I3DEmbedding(tmp_path / "i3d.pt"), FVDProtocol(clips=8, frames=16)
    real = torch.rand(8, 20, 3, 16, 16)
    same = fvd(real, real.clone(), embed, protocol)
    assert (
        same["fvd"] == pytest.approx(0, abs=1e-6) and "8 real and 8 generated" in same["protocol"]
    )
    assert fvd(real, real * 0.5, embed, protocol)["fvd"] > 0.05
    with pytest.raises(VidgenError, match="needs 8 generated clips of at least 16 frames"):
        fvd(real, real[:, :10], embed, protocol)
    # compare's scores: every set against the real clips' statistics, under the same protocol
    clips = {"real": real, "same": real.clone(), "dim": real * 0.5}
    scores, described = generative_scores(clips, embed=embed, fvd_frames=16)
    assert described == protocol.describe() and "fvd" not in scores["real"]
    assert scores["same"]["fvd"] == pytest.approx(0, abs=1e-6)
    assert scores["dim"]["fvd"] == pytest.approx(fvd(real, real * 0.5, embed, protocol)["fvd"])
    with pytest.raises(VidgenError, match="at least 2 clips"):
        generative_scores({"real": real[:1], "same": real[:1]}, embed=embed)


# --- stabilization -----------------------------------------------------------------------


def shaky_clip(frames: int = 6, size: int = 96) -> tuple[np.ndarray, list[np.ndarray]]:
    """A textured scene seen by a camera that pans and rotates; poses map frame -> scene."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (160, 160, 3)).astype(np.uint8), (0, 0), 2)
    scene = cv2.normalize(scene, None, 0, 255, cv2.NORM_MINMAX)
    poses = []
    for t in range(frames):
        angle = np.deg2rad(0.6 * t)
        poses.append(
            np.array(
                [
                    [np.cos(angle), -np.sin(angle), 30 + 3 * t],
                    [np.sin(angle), np.cos(angle), 30 + 2 * t],
                    [0, 0, 1],
                ]
            )
        )
    clip = np.stack([cv2.warpPerspective(scene, np.linalg.inv(p), (size, size)) for p in poses])
    return clip, poses


def test_stabilization_recovers_known_homographies():
    clip, poses = shaky_clip()
    stabilizer = Stabilizer()
    found = stabilizer.homography(stabilizer.features(clip[3]), stabilizer.features(clip[0]))
    true = np.linalg.inv(poses[0]) @ poses[3]  # frame 3 pixels -> frame 0 pixels
    np.testing.assert_allclose(found / found[2, 2], true, atol=0.1)  # translation within 0.1 px
    steady = stabilizer.stabilize(clip)
    centre = (slice(20, 76), slice(20, 76))
    before = np.abs(clip[-1][centre].astype(float) - clip[0][centre]).mean()
    after = np.abs(steady[-1][centre].astype(float) - clip[0][centre]).mean()
    assert before > 20 and after < 3
    broken = clip.copy()
    broken[2] = 0  # a blank frame has no features: the clip is dropped
    assert stabilizer.stabilize(broken) is None


def test_prep_video_stabilize(tmp_path):
    clip, _ = shaky_clip(frames=2 + 3 * 4)  # two skipped frames, then 3 clips of 4
    folder = tmp_path / "shaky"
    folder.mkdir()
    for t, frame in enumerate(clip):
        cv2.imwrite(str(folder / f"{t:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out = tmp_path / "stable"
    assert (
        prep_main(
            [
                "video",
                str(folder),
                "--out",
                str(out),
                "--size",
                "32x32",
                "--stabilize",
                "--clip-frames",
                "4",
                "--val-frac",
                "0.34",
                "--test-frac",
                "0.34",
            ]
        )
        == 0
    )
    with open_clips(out / "train.h5") as f:
        assert f["frames"].shape == (4, 32, 32, 3) and list(f["episode_starts"]) == [0, 4]
    assert (out / "val.h5").is_file() and (out / "test.h5").is_file()
