"""VGAN on bouncing balls: does a CPU-budget run learn plausible videos and a useful mask?

Trains the unconditional two-stream VGAN (``VGANTask``, the experiment ``vgan_bouncing``
sizes) for a fixed wall-clock budget, then scores with ``ball_plausibility``:
  - held-out real clips (the ceiling), samples of the untrained generator (the floor, same
    initial weights), and samples of the trained generator;
  - the mean mask on ball pixels of the samples (bright pixels) against the rest.
Writes benchmarks/results/vgan.json and .md.

    flock /tmp/vidgen-heavy.lock .venv/bin/python benchmarks/vgan.py --minutes 18
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.utils import save_image

from vidgen.eval.plausibility import BallSpec, ball_plausibility
from vidgen.models.vgan import VideoDiscriminator, VideoGenerator
from vidgen.sim.bouncing_balls import BouncingBallsConfig, simulate
from vidgen.tasks.vgan import VGANTask

RESULTS = Path(__file__).resolve().parent / "results"


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


def render(episodes: int, frames: int, size: int, seed: int, balls: int) -> np.ndarray:
    world = BouncingBallsConfig(num_balls=balls)
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument("--name", default="vgan")
    parser.add_argument("--weights", help="score this saved state_dict instead of training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, workers=True)

    train_eps = render(args.episodes, 2 * args.frames, args.size, seed=1, balls=args.balls)
    held_out = render(args.clips, args.frames, args.size, seed=2, balls=args.balls)
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
    RESULTS.mkdir(exist_ok=True)
    save_strip(trained, RESULTS / f"{args.name}_samples.png")
    save_strip(trained_batch_stats, RESULTS / f"{args.name}_samples_batch_stats.png")
    torch.save(task.state_dict(), RESULTS / f"{args.name}_weights.pt")

    scores = {
        "real": ball_plausibility(real, spec),
        "untrained": ball_plausibility(untrained, spec),
        "trained": ball_plausibility(trained.video, spec),
        "trained_batch_stats": ball_plausibility(trained_batch_stats.video, spec),
    }
    gap = scores["real"]["score"] - scores["untrained"]["score"]
    result = {
        "config": vars(args),
        "iterations": trainer.global_step // 2,  # two optimizer steps per iteration
        "train_seconds": round(train_s, 1),
        "plausibility": scores,
        # 0 = as plausible as the untrained generator, 1 = as plausible as real clips.
        "trained_fraction_of_gap": (scores["trained"]["score"] - scores["untrained"]["score"]) / gap
        if gap
        else float("nan"),
        **mask_statistics(task, args.clips),
    }
    result["mask_ratio_balls_to_rest"] = result["mask_on_balls"] / max(
        result["mask_elsewhere"], 1e-12
    )
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# VGAN on bouncing balls ({args.frames}x{args.size}x{args.size}, {args.minutes} min CPU)",
        "",
        f"{result['iterations']} iterations in {train_s:.0f} s",
        "",
        "| clips | plausibility | right ball count | smooth steps | spread across clips |",
        "|---|---|---|---|---|",
        *(
            f"| {who} | {s['score']:.3f} | {s['right_count']:.3f} | {s['smooth_steps']:.3f} "
            f"| {s['spread']:.3f} |"
            for who, s in scores.items()
        ),
        "",
        f"trained / (real - untrained) gap closed: {result['trained_fraction_of_gap']:.2f}",
        f"mean mask on ball pixels {result['mask_on_balls']:.3f}, elsewhere "
        f"{result['mask_elsewhere']:.3f} (ratio {result['mask_ratio_balls_to_rest']:.2f})",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
