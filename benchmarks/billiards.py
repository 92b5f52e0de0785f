"""Billiards benchmark (Fragkiadaki et al. 2016): object-centric vs frame-centric vs
constant velocity, on held-out worlds, and planning success in the true simulator.

Trains ``billiards_oc_cpu`` and ``billiards_fc_cpu`` (tables U[300, 450], 1-2 balls) for at
most ``--minutes`` each (the last checkpoint is scored), then on held-out test episodes from
larger tables (U[450, 550], never seen in training) and, separately, with 3 balls (never
seen):
(a) mean position error over the 20 predicted steps, as a ratio to constant velocity (goal
    for OC: <= 0.5), on all held-out episodes and, beside it, on the subset of episodes with
    a collision; each also near collisions;
(b) planning: push ball 0 so that 20 frames later it is within two radii of a target that a
    random force reaches; success rate in the true simulator against a random force's. The
    imagination stride is chosen per model on validation tables and success is reported on
    test tables from a separate seed stream, never used to choose it.

    python -m benchmarks.billiards                                  # ~15 min x 2, then scoring
    python -m benchmarks.billiards --minutes 2 --plans 10 --val-plans 5 --episodes 40  # a trial
    python -m benchmarks.billiards --reuse    # score the saved checkpoints of an earlier run

Record: benchmarks/results/billiards.json; checkpoints and videos go to benchmarks/work.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import max_time
from benchmarks.record import WORK, Run, parser, settings
from vidgen.cli.train import compose_config, train
from vidgen.eval.billiards import TrajectoryMetrics, collision_ahead, future_displacements
from vidgen.loading import load
from vidgen.models import ConstantVelocity
from vidgen.sim.billiards import BilliardsConfig, simulate
from vidgen.tasks.billiards_imagination import erase_balls, imagine
from vidgen.tasks.billiards_planning import (
    PLAN_STRIDE,
    PlanningProblem,
    plan_problem,
    planning_problem,
    random_force,
)
from vidgen.viz.billiards import side_by_side
from vidgen.viz.video import write_mp4

SIZE, FRAMES, HORIZON = 96, 40, 20
HELD_OUT = {
    "larger_tables": BilliardsConfig(balls=(1, 2), table_size=(450.0, 550.0)),
    "three_balls": BilliardsConfig(balls=(3, 3), table_size=(300.0, 450.0)),
}
# Planning problems of each split come from their own seed stream (a tuple seed, which no
# integer episode seed equals), so the test tables never choose the stride.
PLANNING_STREAMS = {"validation": (2016, 1), "test": (2016, 2)}


def train_model(experiment: str, minutes: float, out: Path) -> torch.nn.Module:
    overrides = [
        f"experiment={experiment}",
        f"paths.output_dir={out / experiment}",
        f"paths.log_dir={out / experiment}",
        f"paths.data_dir={out / 'data'}",
        f"+trainer.max_time={max_time(minutes)}",
        "trainer.max_epochs=1000",
        "data.samples_per_epoch=480",  # short epochs: validation and last.ckpt every ~2 min
        "trainer.enable_progress_bar=false",
        "test=false",
    ]
    train(compose_config("train", overrides))
    return load(out / experiment / "checkpoints" / "last.ckpt")


def held_out_episodes(config: BilliardsConfig, count: int, seed: int) -> dict[str, torch.Tensor]:
    """``count`` consecutive episodes of seed stream ``seed``, stacked into a batch."""
    runs = [simulate(FRAMES, SIZE, seed=seed * 100_000 + i, config=config) for i in range(count)]
    batch = {f"objects/{k}": torch.from_numpy(np.stack([r[k] for r in runs])) for k in runs[0]}
    frames = batch.pop("objects/frames")
    batch["frames"] = frames.permute(0, 1, 4, 2, 3).float().div(255.0)
    return batch


@torch.no_grad()
def trajectory_scores(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict:
    """Teacher-forced predictions at steps 1 .. T - 21 (a true velocity for constant velocity,
    and the whole 20-step future in the episode)."""
    metric = TrajectoryMetrics(HORIZON)
    positions, forces = batch["objects/positions"], batch["objects/forces"]
    for start in range(0, len(positions), 16):
        rows = slice(start, start + 16)
        predicted, _ = net(batch["frames"][rows], positions[rows], forces[rows])
        target = future_displacements(positions[rows], HORIZON)
        near = collision_ahead(batch["objects/collisions"][rows], HORIZON)
        steps = slice(1, FRAMES - HORIZON)
        metric.update(
            predicted[:, steps].flatten(0, 2),
            target[:, steps].flatten(0, 2),
            near[:, steps].flatten(),
        )
    return {name: values.mean().item() for name, values in metric.compute().items()}


def planning_problems(config: BilliardsConfig, count: int, split: str) -> list[PlanningProblem]:
    """Balls at rest on a held-out table and a target that some random force reaches."""
    rng = np.random.default_rng(PLANNING_STREAMS[split])
    return [planning_problem(rng, config, horizon=HORIZON) for _ in range(count)]


def planning_success(net: torch.nn.Module, problems: list[PlanningProblem], stride: int) -> float:
    hits = 0
    for problem in problems:
        plan = plan_problem(net, problem, (SIZE, SIZE), candidates=48, stride=stride)
        hits += problem.solved_by(problem.outcome(plan.force.double().numpy())[-1, 0])
    return float(hits / len(problems))


def random_success(problems: list[PlanningProblem], config: BilliardsConfig, seed: int) -> float:
    rng = np.random.default_rng(seed)
    return float(
        np.mean([p.solved_by(p.outcome(random_force(rng, config))[-1, 0]) for p in problems])
    )


def planning_report(nets: dict[str, torch.nn.Module], args: argparse.Namespace) -> dict:
    """Per model: success on validation tables for each stride, the stride chosen there,
    and success with that stride on the test tables; a random force's on both."""
    config = HELD_OUT["larger_tables"]
    problems = {
        "validation": planning_problems(config, args.val_plans, "validation"),
        "test": planning_problems(config, args.plans, "test"),
    }
    report = {
        "problems": {split: len(p) for split, p in problems.items()},
        "random_force": {split: random_success(p, config, 8) for split, p in problems.items()},
    }
    for name in ("oc", "fc"):
        if name in nets:
            by_stride = {
                stride: planning_success(nets[name], problems["validation"], stride)
                for stride in args.plan_strides
            }
            chosen = max(by_stride, key=by_stride.get)  # ties: the first listed
            start = time.perf_counter()
            report[name] = {
                "validation_success_by_stride": {str(k): v for k, v in by_stride.items()},
                "chosen_stride": chosen,
                "test_success": planning_success(nets[name], problems["test"], chosen),
                "test_seconds": round(time.perf_counter() - start, 1),
            }
    return report


def trajectory_report(nets: dict[str, torch.nn.Module], episodes: int, out: Path) -> dict:
    """Each held-out set's trajectory scores per model, on all episodes and on those with a
    collision, with ratios to constant velocity."""
    report = {}
    for seed, (set_name, config) in enumerate(HELD_OUT.items(), start=1):
        batch = held_out_episodes(config, episodes, seed)
        collided = batch["objects/collisions"].flatten(1).amax(1) > 0  # [B]
        subsets = {"all_episodes": batch}
        if collided.any():
            subsets["collision_episodes"] = episode_subset(batch, collided)
        report[set_name] = {"episodes": episodes, "with_collisions": int(collided.sum())}
        for subset, rows in subsets.items():
            scores = {name: trajectory_scores(net, rows) for name, net in nets.items()}
            baseline = scores["constant_velocity"]
            for name in scores:
                for key in ("position", "position_near_collision"):
                    scores[name][f"{key}_ratio_to_cv"] = scores[name][key] / baseline[key]
            report[set_name][subset] = scores
        if "oc" in nets and set_name == "larger_tables":
            imagination_video(nets["oc"], batch, out / "imagination_oc.mp4")
    return report


def episode_subset(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in batch.items()}


def imagination_video(net: torch.nn.Module, batch: dict[str, torch.Tensor], path: Path) -> None:
    """Episode 0 imagined from its first frame and force beside the truth."""
    frames, positions = batch["frames"][:1], batch["objects/positions"][:1]
    radii = batch["objects/radii"][:1, 0]
    imagined_pos, imagined_frames = imagine(
        net,
        frames[:, :1],
        positions[:, :1],
        radii,
        erase_balls(frames[:, 0]),
        FRAMES - 1,
        batch["objects/forces"][:1],
    )
    to_uint8 = lambda x: (x[0].permute(0, 2, 3, 1) * 255).round().byte().numpy()
    video = side_by_side(
        to_uint8(frames),
        positions[0].numpy(),
        to_uint8(torch.cat([frames[:, :1], imagined_frames], 1)),
        torch.cat([positions[:, :1], imagined_pos], 1)[0].numpy(),
        600.0,
    )
    write_mp4(video, path, fps=10)


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--minutes", type=float, default=15.0, help="training per model")
    args_parser.add_argument("--episodes", type=int, default=100, help="held-out episodes per set")
    args_parser.add_argument("--plans", type=int, default=40, help="test planning problems")
    args_parser.add_argument(
        "--val-plans", type=int, default=20, help="validation problems that choose the stride"
    )
    args_parser.add_argument(
        "--plan-strides",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[1, PLAN_STRIDE, HORIZON],
        help="imagination strides (frames per look) tried on validation, e.g. 1,5,20",
    )
    args_parser.add_argument("--threads", type=int, default=2)
    args_parser.add_argument("--models", default="oc,fc")
    args_parser.add_argument(
        "--reuse", action="store_true", help="skip training: score the saved last.ckpt files"
    )
    args = args_parser.parse_args()
    run = Run(args.results)
    torch.set_num_threads(args.threads)
    out = WORK / "billiards"
    nets, train_seconds = {"constant_velocity": ConstantVelocity(HORIZON)}, {}
    for name in args.models.split(","):
        start = time.perf_counter()
        if args.reuse:
            ckpt = out / f"billiards_{name}_cpu" / "checkpoints" / "last.ckpt"
            if not ckpt.exists():
                args_parser.error(f"--reuse: no checkpoint at {ckpt}")
            nets[name] = load(ckpt).net.eval()
        else:
            nets[name] = train_model(f"billiards_{name}_cpu", args.minutes, out).net
            train_seconds[name] = round(time.perf_counter() - start, 1)
    figures = {
        "train_seconds": train_seconds or None,
        "trajectories": trajectory_report(nets, args.episodes, out),
        "planning": planning_report(nets, args),
    }
    protocol = {
        "trajectories": f"test episodes simulated here ({args.episodes} per held-out set, seed "
        "streams 1 and 2): all of them, and the subset with at least one collision; every "
        "model and constant velocity on the same episodes",
        "planning": "stride chosen per model on validation tables (own seed stream), success "
        "reported on test tables (another stream) with that stride; a random force on both",
        "models": f"checkpoints of an earlier run in {out}, not trained here"
        if args.reuse
        else f"equal wall time: each trained here for {args.minutes} min on billiards_small "
        "(same data and seed); the last checkpoint is scored",
    }
    run.write("billiards", figures, protocol, settings(args))
    for set_name, sets in figures["trajectories"].items():
        for subset in ("all_episodes", "collision_episodes"):
            for name, s in sets.get(subset, {}).items():
                print(
                    f"{set_name} {subset} {name}: position error {s['position']:.2f} "
                    f"({s['position_ratio_to_cv']:.3f}x constant velocity)"
                )
    print(f"planning: {figures['planning']}")


if __name__ == "__main__":
    main()
