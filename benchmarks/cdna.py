"""CDNA, DNA and STP on the synthetic pushing world: do they beat copy-last, and do they use
the actions?

Trains each head of the small ``cdna_pusher`` experiment for a fixed wall-clock budget on
the CPU, then rolls out every test window (2 context frames, 8 predicted) three ways: with
the true actions, with the actions of another clip (a cyclic shift over the batch), and as
copy-last-frame. Prints PSNR / SSIM means over the 8 predicted frames and the gains in dB,
and writes benchmarks/results/cdna.{json,md}.

    flock /tmp/vidgen-heavy.lock python benchmarks/cdna.py        # ~11 min on 2 cores
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from vidgen.cli.train import CONFIG_DIR
from vidgen.data.dataset import to_model_batch
from vidgen.eval import CopyLastFrame, frame_metrics

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", nargs="+", default=["cdna", "dna", "stp"])
    parser.add_argument("--minutes", type=float, default=6.0, help="CDNA's training budget")
    parser.add_argument("--other-minutes", type=float, default=2.0, help="DNA's and STP's")
    # One thread is robust on a shared CPU: spinning OpenMP threads collapse under contention.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=str(RESULTS / "data" / "pusher32"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. data.batch_size=8"
    )
    return parser.parse_args()


def compose_config(head: str, args: argparse.Namespace, output: Path):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
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
def evaluate(task, datamodule) -> dict[str, dict[str, float]]:
    """Mean PSNR / SSIM over all predicted frames of every test window, three ways."""
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
    return {name: {m: v / count for m, v in totals.items()} for name, totals in sums.items()}


def run_head(head: str, args: argparse.Namespace) -> dict:
    output = RESULTS / "runs" / head
    cfg = compose_config(head, args, output)
    pl.seed_everything(cfg.seed, workers=True)
    minutes = args.minutes if head == "cdna" else args.other_minutes
    datamodule = hydra.utils.instantiate(cfg.data)
    task = hydra.utils.instantiate(cfg.model)
    datamodule.prepare_data()
    task.check_frame_shape(datamodule.frame_shape)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=-1,
        max_time=datetime.timedelta(minutes=minutes),
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=output,
    )
    start = time.time()
    trainer.fit(task, datamodule=datamodule)
    train_seconds = time.time() - start
    datamodule.setup("test")
    result = evaluate(task, datamodule)
    return {
        "head": head,
        "updates": trainer.global_step,
        "train_seconds": round(train_seconds, 1),
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
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
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
    setup = {
        "minutes_cdna": args.minutes,
        "minutes_dna_stp": args.other_minutes,
        "threads": args.threads,
        "data": args.data,
        "overrides": args.overrides,
        "torch": torch.__version__,
    }
    (RESULTS / "cdna.json").write_text(json.dumps({"setup": setup, "results": rows}, indent=2))
    header = "| head | updates | PSNR true | PSNR shuffled | PSNR copy-last | gain dB | " \
             "shuffle drop dB | SSIM true | SSIM copy-last |"  # fmt: skip
    lines = [header, "|" + "---|" * 9]
    lines += [
        f"| {r['head']} | {r['updates']} | {r['true_actions_psnr']:.2f} | "
        f"{r['shuffled_actions_psnr']:.2f} | {r['copy_last_psnr']:.2f} | "
        f"{r['gain_over_copy_last_db']:+.2f} | {r['shuffle_drop_db']:.2f} | "
        f"{r['true_actions_ssim']:.3f} | {r['copy_last_ssim']:.3f} |"
        for r in rows
    ]
    (RESULTS / "cdna.md").write_text(
        f"CDNA / DNA / STP on pusher: CDNA {args.minutes} min, DNA and STP "
        f"{args.other_minutes} min each, {args.threads} thread(s)\n\n" + "\n".join(lines) + "\n"
    )
    print(f"wrote {RESULTS / 'cdna.json'} and cdna.md")


if __name__ == "__main__":
    main()
