"""VGAN on bouncing balls: does a CPU-budget run learn plausible videos and a useful mask?

Trains the unconditional two-stream VGAN (``VGANTask``, the experiment ``vgan_bouncing``
sizes) for a fixed wall-clock budget, then scores with ``ball_plausibility``:
  - held-out real clips (the ceiling), samples of the untrained generator (the floor, same
    initial weights), and samples of the trained generator;
  - the mean mask on ball pixels of the samples (bright pixels) against the rest.
The record states the world (ball count, radii, speeds, frame size) the run used.

    python -m benchmarks.vgan [--minutes 18 --balls 3 --size 32 --frames 8]

Record: benchmarks/results/vgan.json; sample strips and weights go to benchmarks/work.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.utils import save_image

from benchmarks.record import WORK, Run, settings
from benchmarks.record import parser as make_parser
from vidgen.eval.plausibility import BallSpec, ball_plausibility
from vidgen.models.vgan import VideoDiscriminator, VideoGenerator
from vidgen.sim.bouncing_balls import BouncingBallsConfig, simulate
from vidgen.tasks.vgan import VGANTask


class RandomWindows(Dataset):
    """Random ``length``-frame windows of rendered episodes, as [T, 3, H, W] in [0, 1]."""

    def __init__(self, episodes: np.ndarray, length: int, samples: int, seed: int) -> None:
        self.episodes, self.length, self.samples = episodes, length, samples
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        e = self.rng.integers(len(self.episodes))
        t = self.rng.integers(self.episodes.shape[1] - self.length + 1)
        clip = torch.from_numpy(self.episodes[e, t : t + self.length])  # T H W C
        return {"frames": clip.permute(0, 3, 1, 2).float() / 255}


def render(
    episodes: int, frames: int, size: int, seed: int, world: BouncingBallsConfig
) -> np.ndarray:
    """Seed stream ``seed``: episode i uses seed * 100,000 + i, so streams never share one."""
    runs = [simulate(frames, size, seed * 100_000 + i, world) for i in range(episodes)]
    return np.stack([run["frames"] for run in runs])


def save_strip(parts, path: Path, clips: int = 8) -> None:
    """Rows: clips; columns: frames of the video, then of the mask."""
    video, mask = parts.video[:clips], parts.mask[:clips].expand(-1, -1, 3, -1, -1)
    rows = torch.cat([video, mask], dim=1).flatten(0, 1)
    save_image(rows, path, nrow=2 * video.shape[1], padding=1)


def mask_statistics(task: VGANTask, num: int) -> dict[str, float]:
    """Mean mask on the samples' ball pixels (any channel >= 0.5) and on the rest."""
    parts = task.sample(num, seed=1)
    on_ball = parts.video.amax(dim=2, keepdim=True) >= 0.5  # B T 1 H W
    mask = parts.mask
    inside, outside = mask[on_ball].mean().item(), mask[~on_ball].mean().item()
    return {
        "mask_on_balls": inside,
        "mask_elsewhere": outside,
        "ball_fraction": on_ball.float().mean().item(),
    }


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--minutes", type=float, default=18.0, help="training wall-clock budget")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--balls", type=int, default=3)
    parser.add_argument("--clips", type=int, default=128, help="clips scored per population")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="score this saved state_dict instead of training")
    args = parser.parse_args()
    run = Run(args.results)
    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, workers=True)

    world = BouncingBallsConfig(num_balls=args.balls)
    train_eps = render(args.episodes, 2 * args.frames, args.size, seed=1, world=world)
    held_out = render(args.clips, args.frames, args.size, seed=2, world=world)
    spec = BallSpec(num_balls=args.balls)
    real = torch.from_numpy(held_out).permute(0, 1, 4, 2, 3).float() / 255

    task = VGANTask(
        VideoGenerator(args.frames, args.size, channels=args.channels),
        VideoDiscriminator(args.frames, args.size, channels=args.channels),
        optimizer=lambda params: torch.optim.Adam(params, lr=args.lr, betas=(0.5, 0.999)),
    )
    task.eval()
    untrained = task.sample(args.clips, seed=1).video
    task.train()

    loader = DataLoader(RandomWindows(train_eps, args.frames, 10**9, args.seed), args.batch)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_time={"seconds": args.minutes * 60},
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    start = time.perf_counter()
    if args.weights:
        task.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    else:
        trainer.fit(task, loader)
    train_s = time.perf_counter() - start
    # Samples with batch-norm running statistics (eval) and with batch statistics (train,
    # as during training); the first is the headline, both are reported.
    task.train()
    trained_batch_stats = task.sample(args.clips, seed=1)
    task.eval()
    trained = task.sample(args.clips, seed=1)
    out = WORK / "vgan"
    out.mkdir(parents=True, exist_ok=True)
    save_strip(trained, out / "samples.png")
    save_strip(trained_batch_stats, out / "samples_batch_stats.png")
    torch.save(task.state_dict(), out / "weights.pt")

    scores = {
        "real": ball_plausibility(real, spec),
        "untrained": ball_plausibility(untrained, spec),
        "trained": ball_plausibility(trained.video, spec),
        "trained_batch_stats": ball_plausibility(trained_batch_stats.video, spec),
    }
    gap = scores["real"]["score"] - scores["untrained"]["score"]
    figures = {
        # Two optimizer steps per iteration; none when saved weights were scored.
        "iterations": None if args.weights else trainer.global_step // 2,
        "train_seconds": None if args.weights else round(train_s, 1),
        "plausibility": scores,
        # 0 = as plausible as the untrained generator, 1 = as plausible as real clips.
        "trained_fraction_of_gap": (scores["trained"]["score"] - scores["untrained"]["score"]) / gap
        if gap
        else float("nan"),
        **mask_statistics(task, args.clips),
    }
    figures["mask_ratio_balls_to_rest"] = figures["mask_on_balls"] / max(
        figures["mask_elsewhere"], 1e-12
    )
    world_record = {
        "world": "bouncing_balls",
        **{k: v for k, v in dataclasses.asdict(world).items() if k != "colors"},
        "frame_size": args.size,
        "clip_frames": args.frames,
        "training_episodes": args.episodes,
        "training_episode_frames": 2 * args.frames,
    }
    protocol = {
        "figures": f"{args.clips} held-out real clips (seed stream 2; training episodes use "
        f"stream 1) and {args.clips} samples each of the untrained and the trained generator "
        "(sample seed 1), scored by ball_plausibility",
        "weights": f"loaded from {args.weights}, not trained in this run"
        if args.weights
        else "trained in this run; the final weights are scored",
        "selection": "none: batch-norm running statistics (eval mode) are the headline, batch "
        "statistics are reported beside them",
    }
    run.write("vgan", figures, protocol, {**settings(args), "world": world_record})
    print(
        f"{figures['iterations']} iterations; plausibility real "
        f"{scores['real']['score']:.3f}, trained {scores['trained']['score']:.3f}, untrained "
        f"{scores['untrained']['score']:.3f}; mask on balls {figures['mask_on_balls']:.3f} vs "
        f"{figures['mask_elsewhere']:.3f} elsewhere"
    )


if __name__ == "__main__":
    main()
