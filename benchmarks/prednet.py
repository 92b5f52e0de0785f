"""PredNet benchmarks, two independent parts with a record each.

quality: the demo (``vidgen-train``, experiment=demo: a small PredNet on bouncing balls,
    8 epochs) trained as is, its best-on-validation checkpoint scored on the whole test split:
    next-frame MSE as a ratio to copy-last-frame (goal: <= 0.15 within 10 minutes).
    Record: prednet_quality.json.
speed: training clips/s of our PredNet against a straightforward implementation of the same
    network (``benchmarks/reference_prednet.py``), same weights, same run (goal: >= 1.5x), at
    the paper config (128x160, nt=10, batch 4, stacks 3/48/96/192) and the own-video config
    (64x80, stacks 3/16/32/64, R_0 of 16), each in both activation layouts (NHWC, NCHW: which
    is faster depends on the CPU's kernels; ``--layouts`` picks), plus the projected time of
    the paper's 18,750 updates.
    ``--compile`` compiles ours in place (as ``model.compile=true``), ``--amp`` runs under
    bf16 autocast. Record: prednet_speed.json, or
    prednet_speed_<device>[_compiled][_bf16][_<layouts>][_<H>x<W>].json off the defaults.

    python -m benchmarks.prednet quality
    python -m benchmarks.prednet speed [--device cuda --amp --compile --configs paper]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import hydra
import torch

from benchmarks.common import max_time
from benchmarks.record import WORK, Run, parser, settings
from benchmarks.reference_prednet import reference_prednet
from vidgen.cli.train import compose_config, train
from vidgen.models import PredNet

PAPER_STEPS = 18_750
LAYOUTS = ("channels_last", "contiguous")  # of our PredNet's activations: NHWC, NCHW
# Frame size (H, W), stack sizes and R stack sizes: the paper's KITTI model
# (configs/model/prednet.yaml) and the own-video default (experiment/prednet_own.yaml).
CONFIGS = {
    "paper": ((128, 160), (3, 48, 96, 192), (3, 48, 96, 192)),
    "own": ((64, 80), (3, 16, 32, 64), (16, 16, 32, 64)),
}


def quality(args: argparse.Namespace, run: Run) -> None:
    out = WORK / "prednet_demo"
    overrides = [
        "experiment=demo",
        f"paths.output_dir={out}",
        f"paths.log_dir={out}",
        f"paths.data_dir={args.data_dir}",
        "trainer.enable_progress_bar=false",
    ]
    if args.minutes is not None:
        overrides.append(f"+trainer.max_time={max_time(args.minutes)}")
    cfg = compose_config("train", overrides)
    start = time.perf_counter()
    metrics = train(cfg)
    seconds = time.perf_counter() - start
    test_windows = len(hydra.utils.instantiate(cfg.data).dataset("test"))
    test = {key[5:]: value for key, value in metrics.items() if key.startswith("test/")}
    figures = {"train_and_test_seconds": round(seconds, 1), "test_windows": test_windows, **test}
    protocol = {
        "figures": f"test split of {cfg.data.root}, {test_windows} unique windows of "
        f"{cfg.data.length} frames, next-frame protocol; copy-last-frame on the same windows",
        "selection": "the checkpoint with the lowest val/loss (validation split) is tested",
    }
    epochs = cfg.trainer.max_epochs
    setup = {**settings(args), "experiment": "demo", "max_epochs": epochs}
    run.write("prednet_quality", figures, protocol, setup)
    print(
        f"quality: demo next-frame MSE {metrics['test/mse']:.5f} vs copy-last "
        f"{metrics['test/copy_last_mse']:.5f} -> ratio {metrics['test/mse_ratio']:.3f} "
        f"(goal <= 0.15) after {seconds / 60:.1f} min"
    )


def clips_per_second(forward, net: PredNet, frames: torch.Tensor, steps: int, amp: bool) -> float:
    """Adam training steps on the L_0 loss; the first (warm-up) step is not timed."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    time_weights = torch.full((frames.shape[1],), 1 / (frames.shape[1] - 1), device=frames.device)
    time_weights[0] = 0
    layer_weights = torch.tensor([1.0, 0, 0, 0], device=frames.device)

    def step() -> None:
        with torch.autocast(frames.device.type, torch.bfloat16, enabled=amp):
            _, errors = forward(net, frames)
        loss = ((errors.float() @ layer_weights) @ time_weights).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    sync = torch.cuda.synchronize if frames.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * frames.shape[0] / (time.perf_counter() - start)


def speed(
    device: str,
    config: str,
    steps: int,
    repeats: int,
    amp: bool,
    compile_model: bool,
    layouts: Sequence[str] | None = None,
    size: Sequence[int] | None = None,
) -> dict[str, object]:
    """Our PredNet at ``config`` in each of ``layouts`` (NHWC, NCHW activations; default:
    both) against the reference, same weights, on batches of 4 clips of 10 frames
    (``size`` H, W overrides the config's); the median of ``repeats`` runs, which alternate
    the implementations."""
    frame_size, stack, r_stack = CONFIGS[config]
    frame_size = tuple(size or frame_size)
    layouts = layouts or LAYOUTS
    torch.manual_seed(0)
    device = torch.device(device)
    net = PredNet(stack, r_stack).to(device)
    # The data module hands frames over as uint8 HWC made float: channels-last in memory.
    frames = torch.rand(4, 10, *frame_size, 3, device=device).permute(0, 1, 4, 2, 3)
    ours = {}
    for layout in layouts:
        model = PredNet(stack, r_stack, channels_last=layout == "channels_last").to(device)
        model.load_state_dict(net.state_dict())
        ours[layout] = model
        if compile_model:  # in place, as the tasks' model.compile does; the warm-up compiles
            model.compile()
    runs: dict[str, list[float]] = {"reference": [], **{layout: [] for layout in layouts}}
    for _ in range(repeats):
        runs["reference"].append(clips_per_second(reference_prednet, net, frames, steps, amp))
        for layout, model in ours.items():
            runs[layout].append(clips_per_second(lambda m, x: m(x), model, frames, steps, amp))
    reference = statistics.median(runs["reference"])
    result: dict[str, object] = {
        "frame_size": list(frame_size),
        "stack_sizes": list(stack),
        "r_stack_sizes": list(r_stack),
        "reference_clips_per_s": reference,
        "runs_clips_per_s": runs,
    }
    for layout in layouts:
        rate = statistics.median(runs[layout])
        result[f"ours_{layout}_clips_per_s"] = rate
        result[f"speedup_{layout}"] = rate / reference
    best = max(result[f"ours_{layout}_clips_per_s"] for layout in layouts)
    result["paper_run_minutes"] = PAPER_STEPS * 4 / best / 60
    return result


def speed_record_name(args: argparse.Namespace) -> str:
    """prednet_speed for the CPU defaults; other devices and options get their own record."""
    device = torch.device(args.device).type
    tags = [device] if device != "cpu" else []
    tags += [tag for tag, on in (("compiled", args.compile), ("bf16", args.amp)) if on]
    tags += args.layouts if args.layouts and set(args.layouts) != set(LAYOUTS) else []
    if args.size:
        tags.append("x".join(map(str, args.size)))
    return "_".join(["prednet_speed", *tags])


def speed_part(args: argparse.Namespace, run: Run) -> None:
    figures = {
        config: speed(
            args.device, config, args.steps, args.repeats, args.amp, args.compile,
            args.layouts, args.size,
        )
        for config in args.configs
    }  # fmt: skip
    protocol = {
        "figures": f"training clips/s, the median of {args.repeats} runs of {args.steps} timed "
        "Adam steps on random 4 x 10 x 3 x H x W clips after one warm-up step (which "
        "compiles, with --compile); the straightforward implementation runs in the same "
        "process on the same weights, alternating with ours, and is the baseline of each "
        "speed-up"
    }
    run.write(speed_record_name(args), figures, protocol, settings(args), device=args.device)
    for config, s in figures.items():
        ours = ", ".join(
            f"{layout} {s[f'ours_{layout}_clips_per_s']:.3f} ({s[f'speedup_{layout}']:.2f}x)"
            for layout in LAYOUTS
            if f"speedup_{layout}" in s
        )
        print(
            f"speed, {config} config: straightforward {s['reference_clips_per_s']:.3f} "
            f"clips/s; ours {ours}; 18,750 steps would take {s['paper_run_minutes']:.0f} min"
        )


def main() -> None:
    args_parser = parser(__doc__)
    parts = args_parser.add_subparsers(dest="part", required=True)
    q = parts.add_parser("quality", help="the demo against copy-last-frame")
    q.add_argument("--data-dir", type=Path, default=Path("data"))
    q.add_argument("--minutes", type=float, help="stop training early (default: the 7 epochs)")
    q.set_defaults(part_main=quality)
    sp = parts.add_parser("speed", help="training clips/s against a straightforward PredNet")
    sp.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    sp.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    sp.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    sp.add_argument("--repeats", type=int, default=3, help="runs; the median is reported")
    sp.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    sp.add_argument("--compile", action="store_true", help="torch.compile our model")
    sp.add_argument("--layouts", nargs="+", choices=LAYOUTS, help="default: both")
    sp.add_argument(
        "--size", nargs=2, type=int, metavar=("H", "W"),
        help="frame size of every config (default: each config's; to try the script out)",
    )  # fmt: skip
    sp.set_defaults(part_main=speed_part)
    args = args_parser.parse_args()
    part_main = args.__dict__.pop("part_main")
    part_main(args, Run(args.results))


if __name__ == "__main__":
    main()
