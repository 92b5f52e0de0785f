"""CDNA, DNA and STP on the synthetic pushing world: do they beat copy-last, and do they use
the actions?

Trains each head of the small ``cdna_pusher`` experiment for the same number of optimizer
updates (same data, batch and seed; about 10 minutes for all three on 2 CPU cores), then
rolls out every test window (2 context frames, 8 predicted) three ways: with the true
actions, with the actions of another clip (a cyclic shift over the batch), and as
copy-last-frame. Reports PSNR / SSIM means over the 8 predicted frames and the gains in dB.

    python -m benchmarks.cdna [--updates 250 --heads cdna dna stp]

Record: benchmarks/results/cdna.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from benchmarks.common import training_only_trainer
from benchmarks.record import WORK, Run, parser, settings
from vidgen.cli.train import compose_config
from vidgen.data.dataset import to_model_batch
from vidgen.eval import CopyLastFrame, frame_metrics


def parse_args() -> argparse.Namespace:
    args_parser = parser(__doc__)
    args_parser.add_argument("--heads", nargs="+", default=["cdna", "dna", "stp"])
    args_parser.add_argument("--updates", type=int, default=250, help="optimizer updates per head")
    # One thread is robust on a shared CPU: spinning OpenMP threads collapse under contention.
    args_parser.add_argument("--threads", type=int, default=1)
    args_parser.add_argument("--data", type=Path, default=WORK / "data" / "pusher32")
    args_parser.add_argument("--seed", type=int, default=0)
    args_parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. data.batch_size=8"
    )
    return args_parser.parse_args()


def head_config(head: str, args: argparse.Namespace, output: Path) -> DictConfig:
    """The pusher experiment with ``head`` on ``--data``, held in memory."""
    return compose_config(
        "train",
        [
            "experiment=cdna_pusher",
            f"model.head={head}",
            f"data.root={args.data}",
            "data.num_workers=0",
            "+data.in_memory=true",
            "+data.eval_batch_size=32",
            f"paths.output_dir={output}",
            f"seed={args.seed}",
            *args.overrides,
        ],
    )


@torch.no_grad()
def evaluate(task, datamodule) -> tuple[dict[str, dict[str, float]], int]:
    """Mean PSNR / SSIM over all predicted frames of every test window, three ways, and the
    number of windows."""
    task.eval()
    context, horizon = task.eval_context, task.eval_horizon
    sums: dict[str, dict[str, float]] = {}
    count = 0
    for batch in datamodule.test_dataloader():
        batch = to_model_batch(batch)
        frames = batch["frames"][:, : context + horizon]
        inputs = task.conditioning(batch, context + horizon)
        shuffled = {**inputs, "actions": inputs["actions"].roll(1, dims=0)}
        predictions = {
            "true_actions": task.rollout(frames[:, :context], horizon, **inputs),
            "shuffled_actions": task.rollout(frames[:, :context], horizon, **shuffled),
            "copy_last": CopyLastFrame().rollout(frames[:, :context], horizon),
        }
        for name, pred in predictions.items():
            metrics = frame_metrics(pred, frames[:, context:])
            for metric in ("psnr", "ssim"):
                totals = sums.setdefault(name, {})
                totals[metric] = totals.get(metric, 0.0) + float(metrics[metric].mean(1).sum())
        count += len(frames)
    means = {name: {m: v / count for m, v in totals.items()} for name, totals in sums.items()}
    return means, count


def run_head(head: str, args: argparse.Namespace) -> dict:
    output = WORK / "cdna" / head
    cfg = head_config(head, args, output)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    task = hydra.utils.instantiate(cfg.model)
    datamodule.prepare_data()
    task.check_frame_shape(datamodule.frame_shape)
    trainer = training_only_trainer(
        accelerator="cpu", max_epochs=-1, max_steps=args.updates, default_root_dir=output
    )
    start = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    train_seconds = time.perf_counter() - start
    datamodule.setup("test")
    result, windows = evaluate(task, datamodule)
    return {
        "head": head,
        "updates": trainer.global_step,
        "batch_size": datamodule.batch_size,
        "train_seconds": round(train_seconds, 1),
        "test_windows": windows,
        **{f"{name}_{m}": round(v, 4) for name, ms in result.items() for m, v in ms.items()},
        "gain_over_copy_last_db": round(
            result["true_actions"]["psnr"] - result["copy_last"]["psnr"], 3
        ),
        "shuffle_drop_db": round(
            result["true_actions"]["psnr"] - result["shuffled_actions"]["psnr"], 3
        ),
    }


def main() -> None:
    args = parse_args()
    run = Run(args.results)
    torch.set_num_threads(args.threads)
    rows = [run_head(head, args) for head in args.heads]
    for row in rows:
        print(
            f"{row['head']:>4}: {row['updates']} updates in {row['train_seconds']:.0f} s | "
            f"PSNR true {row['true_actions_psnr']:.2f} dB, shuffled "
            f"{row['shuffled_actions_psnr']:.2f}, copy-last {row['copy_last_psnr']:.2f} | "
            f"gain over copy-last {row['gain_over_copy_last_db']:+.2f} dB, "
            f"shuffling costs {row['shuffle_drop_db']:.2f} dB | SSIM "
            f"{row['true_actions_ssim']:.3f} vs copy-last {row['copy_last_ssim']:.3f}"
        )
    protocol = {
        "figures": f"test split of {args.data}, every unique window (test_windows per head), "
        "2 context frames and 8 predicted; shuffled actions and copy-last-frame on the same "
        "windows",
        "budget": f"equal optimizer updates: every head trains for {args.updates} updates on "
        "the same training split, batch size and seed",
        "selection": "none: the weights after the last update are tested; no setting is "
        "chosen on any split",
    }
    run.write("cdna", {"heads": rows}, protocol, settings(args))


if __name__ == "__main__":
    main()
