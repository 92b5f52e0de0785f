"""Training speed of any experiment, eager, compiled and in bf16, on one device.

Times training batches of an experiment's model (e.g. ``cdna_push``, the recipe of Finn,
Goodfellow & Levine 2016, arXiv:1605.07157) through Lightning as vidgen-train runs them, on one
fixed synthetic batch of the experiment's shape (batch size, window length, frame size,
actions / states / ball tracks as the model takes them), so no dataset is needed. Variants:
``eager``; ``compiled`` (``model.compile=true``); ``bf16`` (``trainer.precision=bf16-mixed``);
``compiled_bf16``. Each reports seconds per batch after ``--warmup`` batches (the first one
compiles), and the projected time of the experiment's planned run (trainer.max_epochs x
samples_per_epoch / batch_size batches) at that rate.

    python -m benchmarks.gpu_steps cdna_push [--steps 50 --variants eager compiled bf16]

Record: benchmarks/results/steps_<experiment>_<device>.json.
"""

from __future__ import annotations

import argparse
import math
import time

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from benchmarks.common import training_only_trainer
from benchmarks.record import WORK, Run, parser, settings
from vidgen.cli.train import compose_config

# variant -> (model overrides, trainer precision)
VARIANTS = {
    "eager": ([], "32-true"),
    "compiled": (["model.compile=true"], "32-true"),
    "bf16": ([], "bf16-mixed"),
    "compiled_bf16": (["model.compile=true"], "bf16-mixed"),
}
BALLS = 2  # billiards batches: balls per table


def parse_args() -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("experiment", help="an experiment config name, e.g. cdna_push")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["eager", "compiled", "bf16"])
    p.add_argument("--steps", type=int, default=50, help="timed batches per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches first (compiling)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="frame size "
                   "(default: the model's or the generated dataset's)")  # fmt: skip
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. data.batch_size=8")
    return p.parse_intermixed_args()


def compose_experiment(args: argparse.Namespace, extra: list[str]) -> DictConfig:
    """The experiment with the command line's overrides, then the variant's ``extra``."""
    chosen = [f"experiment={args.experiment}", f"paths.output_dir={WORK / 'gpu_steps'}"]
    return compose_config("train", [*chosen, *args.overrides, *extra])


def frame_size(cfg: DictConfig, given: list[int] | None) -> tuple[int, int]:
    """(H, W): ``--size``, else what the model is built for, else the generated dataset's."""
    model, data = cfg.model, cfg.data
    if given:
        return given[0], given[1]
    if "image_size" in model.get("net", {}):
        return tuple(model.net.image_size)
    if "generator" in model:
        return model.generator.size, model.generator.size
    if "generate" in data:
        return data.generate.size, data.generate.size
    raise SystemExit(f"{cfg.task_name}: the frame size is not in the config; give --size H W.")


def synthetic_batch(cfg: DictConfig, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """One random batch with every input the experiment's model reads."""
    model, g = cfg.model, torch.Generator().manual_seed(0)
    b, t = cfg.data.batch_size, cfg.data.length
    if "generator" in model:
        t = max(t, model.generator.frames)
    batch = {"frames": torch.rand(b, t, 3, *size, generator=g)}  # B T C H W
    net = model.get("net", {})
    for key in ("action", "state"):
        if net.get(f"{key}_dim"):
            batch[f"{key}s"] = torch.randn(b, t, net[f"{key}_dim"], generator=g)
    if "max_balls" in model:  # balls wandering from random places, the first pushed at t=0
        start = net.arena * (0.25 + 0.5 * torch.rand(b, 1, BALLS, 2, generator=g))
        batch["objects/positions"] = start + torch.randn(b, t, BALLS, 2, generator=g).cumsum(1)
        batch["objects/forces"] = torch.zeros(b, t, BALLS, 2)
        batch["objects/forces"][:, 0, 0] = 5e4
        batch["objects/collisions"] = torch.zeros(b, t, BALLS)
    return batch


def planned_batches(cfg: DictConfig) -> int | None:
    """Training batches of the experiment's run; None when an epoch is a pass over data."""
    if cfg.trainer.get("max_steps", -1) > 0:
        return cfg.trainer.max_steps
    if not cfg.data.get("samples_per_epoch"):
        return None
    return cfg.trainer.max_epochs * math.ceil(cfg.data.samples_per_epoch / cfg.data.batch_size)


class BatchClock(pl.Callback):
    """The time at the end of every training batch, after the device has finished it."""

    def __init__(self, device: torch.device) -> None:
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.start, self.ends = 0.0, []

    def on_train_start(self, trainer, pl_module) -> None:
        self.sync()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.sync()
        self.ends.append(time.perf_counter())


def time_variant(args: argparse.Namespace, variant: str) -> dict:
    overrides, precision = VARIANTS[variant]
    cfg = compose_experiment(args, overrides)
    size = frame_size(cfg, args.size)
    pl.seed_everything(cfg.seed, verbose=False)
    task = hydra.utils.instantiate(cfg.model)
    task.check_frame_shape((3, *size))
    batch = synthetic_batch(cfg, size)
    device = torch.device(args.device)
    clock = BatchClock(device)
    trainer = training_only_trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        callbacks=[clock],
        default_root_dir=WORK / "gpu_steps",
    )
    trainer.fit(task, DataLoader([batch] * (args.warmup + args.steps), batch_size=None))
    timed = clock.ends[args.warmup - 1 :] if args.warmup else [clock.start, *clock.ends]
    seconds = (timed[-1] - timed[0]) / args.steps
    planned = planned_batches(cfg)
    return {
        "seconds_per_batch": seconds,
        "clips_per_s": len(batch["frames"]) / seconds,
        "first_batch_seconds": clock.ends[0] - clock.start,
        "frames": list(batch["frames"].shape),
        "planned_batches": planned,
        "projected_run_hours": None if planned is None else planned * seconds / 3600,
    }


def main() -> None:
    args = parse_args()
    run = Run(args.results)
    results = {variant: time_variant(args, variant) for variant in args.variants}
    for variant, r in results.items():
        if "eager" in results:
            r["speedup_over_eager"] = results["eager"]["seconds_per_batch"] / r["seconds_per_batch"]
        run_time = r["projected_run_hours"]
        print(
            f"{args.experiment} {variant}: {r['seconds_per_batch'] * 1e3:.1f} ms/batch "
            f"({r['clips_per_s']:.1f} clips/s), first batch {r['first_batch_seconds']:.1f} s"
            + ("" if run_time is None else f"; {r['planned_batches']} batches: {run_time:.2f} h")
        )
    protocol = {
        "figures": f"{args.steps} timed training batches after {args.warmup} untimed ones "
        "(the first compiles), one fixed random batch of the experiment's shape, through "
        "Lightning with no validation; the projection multiplies the rate by the experiment's "
        "planned batches"
    }
    device = torch.device(args.device).type
    name = f"steps_{args.experiment}_{device}"
    run.write(name, results, protocol, settings(args), device=args.device)


if __name__ == "__main__":
    main()
