"""Render a synthetic world (``vidgen.sim.WORLDS``) into train/val/test clip files."""

from __future__ import annotations

import argparse
import os

import numpy as np

from data_prep.common import SplitWriter, parse_size, progress
from vidgen.errors import VidgenError
from vidgen.sim import WORLDS

SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def split_counts(episodes: int) -> dict[str, int]:
    """Episodes per split, 80/10/10, every split getting at least one."""
    if episodes < 3:
        raise VidgenError(f"need at least 3 episodes (one per split), got {episodes}.")
    val = test = max(1, round(episodes * SPLIT_FRACTIONS["val"]))
    return {"train": episodes - val - test, "val": val, "test": test}


def generate_dataset(
    out: str | os.PathLike,
    world: str = "bouncing_balls",
    episodes: int = 100,
    frames: int = 40,
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    fps: float = 10.0,
    force: bool = False,
) -> None:
    """Render ``episodes`` seeded runs of ``world``; episode e of every split has its own seed."""
    if world not in WORLDS:
        raise VidgenError(f"unknown world {world!r}; choose from {', '.join(WORLDS)}.")
    if frames <= 0:
        raise VidgenError(f"frames must be positive, got {frames}.")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if min(size) <= 0:
        raise VidgenError(f"size must be positive, got {size}.")
    simulate = WORLDS[world]
    jobs = [split for split, count in split_counts(episodes).items() for _ in range(count)]
    attrs = {"world": world, "seed": seed}
    with SplitWriter(
        out, fps=fps, source=f"synthetic:{world}", force=force, compression="lzf", attrs=attrs
    ) as writer:
        for number, split in enumerate(progress(jobs, f"rendering {world}")):
            # Each episode's seed derives from (seed, number): reproducible and independent.
            episode_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
            run = simulate(num_frames=frames, size=size, seed=episode_seed)
            tracks = {
                key: value
                for key, value in run.items()
                if key not in ("frames", "actions", "states")
            }
            writer.add(
                split,
                f"{world}/{number:05d}",
                run["frames"],
                actions=run.get("actions"),
                states=run.get("states"),
                objects=tracks,
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", default="bouncing_balls", choices=sorted(WORLDS))
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--episodes", type=int, default=100, help="episodes over all splits")
    parser.add_argument("--frames", type=int, default=40, help="frames per episode")
    parser.add_argument("--size", default="64", help="frame size, S or HxW")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing dataset")


def run(args: argparse.Namespace) -> int:
    generate_dataset(
        args.out,
        args.world,
        args.episodes,
        args.frames,
        parse_size(args.size),
        args.seed,
        force=args.force,
    )
    print(f"wrote {args.out}/train.h5, val.h5, test.h5")
    return 0
