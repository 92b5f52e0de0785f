"""``vidgen-plan``: choose the force that sends the cue ball to a target, by imagining
candidate forces with a trained billiards predictor (Fragkiadaki et al. 2016), then check the
choice in the true simulator and show it in a video.

vidgen-plan ckpt=logs/billiards_oc_cpu/<run>/checkpoints/last.ckpt --balls 2 --target 300,120
vidgen-plan ckpt=... --table poly --seed 3 --candidates 128 --out plan.mp4

The video plays the true outcome of the chosen force, with every candidate's imagined end
point (grey), the chosen imagined path (black) and the target's two-radii circle (green).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from vidgen.cli.command import check_output
from vidgen.cli.errors import exit_on_user_error
from vidgen.errors import VidgenError
from vidgen.loading import load
from vidgen.sim.billiards import BALL_COLORS, BilliardsConfig, paint_balls
from vidgen.tasks.billiards import BilliardsTask
from vidgen.tasks.billiards_planning import PLAN_STRIDE, plan_problem, planning_problem
from vidgen.viz.billiards import plan_frames
from vidgen.viz.video import write_mp4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidgen-plan", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a billiards checkpoint (ckpt=PATH)")
    parser.add_argument("--target", required=True, help="X,Y in world units (arena 600)")
    parser.add_argument("--balls", type=int, default=1, help="balls on the table (ball 0 is hit)")
    parser.add_argument("--table", choices=("rect", "poly"), default="rect")
    parser.add_argument("--seed", type=int, default=0, help="table and ball placement")
    parser.add_argument("--horizon", type=int, default=20, help="frames until the ball is judged")
    parser.add_argument("--candidates", type=int, default=64, help="forces per CEM iteration")
    parser.add_argument("--iterations", type=int, default=3, help="cross-entropy iterations")
    parser.add_argument("--stride", type=int, default=PLAN_STRIDE, help="frames imagined per look")
    parser.add_argument("--out", default="plan.mp4")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--fps", type=float, default=10.0)
    return parser


def parse_target(text: str) -> torch.Tensor:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise VidgenError(f"--target must be X,Y (e.g. 300,120), got {text!r}.") from None
    return torch.tensor([x, y])


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # key=value (the other commands' style) and --key value both work.
    argv = [part for arg in argv for part in _as_flag(arg)]
    args = build_parser().parse_args(argv)
    target = parse_target(args.target)
    check_output(Path(args.out), args.force, "--out")
    task = load(args.ckpt)
    if not isinstance(task, BilliardsTask):
        raise VidgenError(f"{args.ckpt} is not a billiards predictor.")
    limit = task.max_balls if hasattr(task.net, "max_balls") else len(BALL_COLORS)
    if not 1 <= args.balls <= limit:
        raise VidgenError(f"--balls must be between 1 and {limit} for this model.")
    size = tuple(int(v) for v in task.frame_size)
    arena = task.net.arena
    config = BilliardsConfig(table=args.table, table_size=(500.0, 500.0), arena=arena)
    problem = planning_problem(
        np.random.default_rng(args.seed),
        config,
        balls=args.balls,
        target=target.double().numpy(),
        horizon=args.horizon,
    )
    plan = plan_problem(
        task.net,
        problem,
        size,
        candidates=args.candidates,
        iterations=args.iterations,
        seed=args.seed,
        stride=args.stride,
    )
    force = plan.force.double().numpy()
    tracks = problem.outcome(force)
    background = problem.background(size)
    frames = np.stack([paint_balls(background, p, problem.radii, arena) for p in tracks])
    reach = 2 * problem.radii[0]
    video = plan_frames(
        frames, tracks, plan.finals.numpy(), plan.path.numpy(), target.numpy(), reach, arena
    )
    write_mp4(video, args.out, args.fps)
    miss = float(np.linalg.norm(tracks[-1, 0] - problem.target))
    angle = math.degrees(math.atan2(force[1], force[0]))
    print(
        f"force {np.linalg.norm(force):.4g} at {angle:.1f} degrees "
        f"(best of {len(plan.candidates)} imagined)"
    )
    print(
        f"imagined end ({plan.path[-1, 0]:.1f}, {plan.path[-1, 1]:.1f}); in the true simulator "
        f"({tracks[-1, 0, 0]:.1f}, {tracks[-1, 0, 1]:.1f}), {miss:.1f} from the target: "
        f"{'success' if problem.solved_by(tracks[-1, 0]) else 'miss'} (two radii = {reach:.0f})"
    )
    print(f"wrote {args.out}")
    return 0


def _as_flag(arg: str) -> list[str]:
    key, sep, value = arg.partition("=")
    if sep and not arg.startswith("-"):
        return [f"--{key}", value]
    return [arg]


if __name__ == "__main__":
    sys.exit(main())
