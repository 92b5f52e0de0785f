"""PredNet on your own video, trained as a new user would: real camera footage, a time budget.

The video (default: OpenCV's sample ``vtest.avi``, a static camera over walking pedestrians,
from Debian's ``opencv-doc`` package; not rendered by vidgen) is prepared with
``vidgen-prep video --size 64x80`` (one video: split in time, test last), then trained three
ways, one after another, each with ``trainer.max_time`` set:
  - ``before``: what ``vidgen-train data=<folder>`` did before schedules followed the run:
    the demo's model at lr 1e-3 and its drop to 0.1x the rate after 400 optimizer steps;
  - ``default``: ``vidgen-train data=<folder>`` as shipped (experiment ``prednet_own``);
  - ``extrap``: ``default``'s best checkpoint fine-tuned with ``prednet_own_extrap``.
Every run keeps its checkpoint with the lowest validation loss. ``vidgen-compare`` then scores
all three and copy-last-frame on every test window of 10 true frames and 10 to predict,
under both protocols (``next_frame``: each frame from all true frames before it;
``rollout``: the 10 frames from the 10 true ones alone), as MSE ratios to copy-last.

    python -m benchmarks.own_video [--video PATH --minutes 15 --extrap-minutes 5]

Record: benchmarks/results/own_video.json; runs and the report go to benchmarks/work/own_video.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from benchmarks.common import max_time
from benchmarks.record import WORK, Run, parser, settings
from vidgen.cli.compare import compare
from vidgen.cli.train import compose_config, data_folder_overrides, train
from vidgen.eval.compare import summary

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
OUT = WORK / "own_video"
# The demo's model, rate (1e-3) and step schedule, which folder runs inherited before
# schedules became fractions.
BEFORE = [
    "experiment=demo",
    "model.optimizer.lr=0.001",
    "model.scheduler._target_=torch.optim.lr_scheduler.MultiStepLR",
    "model.scheduler.milestones=[400]",
    "trainer.max_epochs=-1",
]


def compose_run(name: str, overrides: list[str]) -> DictConfig:
    """The training config of run ``name``: its own folder, no progress bar or strips."""
    quiet = ["trainer.enable_progress_bar=false", "callbacks.rollout_strip.every_n_epochs=1000"]
    paths = [f"paths.output_dir={OUT / name}", f"paths.log_dir={OUT}"]
    return compose_config("train", [*overrides, *paths, *quiet])


def best_checkpoint(name: str) -> Path:
    """The run's checkpoint with the lowest validation loss (not ``last.ckpt``)."""
    (best,) = (p for p in (OUT / name / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt")
    return best


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--video", type=Path, default=VTEST)
    args_parser.add_argument("--size", default="64x80", help="HxW of the prepared frames")
    args_parser.add_argument("--minutes", type=float, default=15.0, help="budget of each t+1 run")
    args_parser.add_argument("--extrap-minutes", type=float, default=5.0)
    args_parser.add_argument("--runs", nargs="+", default=["before", "default", "extrap"])
    args = args_parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video} is missing: install opencv-doc or pass --video PATH.")
    run = Run(args.results)
    shutil.rmtree(OUT, ignore_errors=True)
    folder = OUT / "data"
    prep = [sys.executable, "-m", "vidgen.cli.prep", "video", str(args.video)]
    subprocess.run([*prep, "--out", str(folder), "--size", args.size], check=True)

    data = data_folder_overrides([f"data={folder}"])
    plans = {
        "before": [*data, *BEFORE, f"+trainer.max_time={max_time(args.minutes)}"],
        # As `vidgen-train data=<folder>` composes it.
        "default": [
            *data_folder_overrides([f"data={folder}"], training=True),
            f"trainer.max_time={max_time(args.minutes)}",
        ],
        "extrap": [
            *data,
            "experiment=prednet_own_extrap",
            f"trainer.max_time={max_time(args.extrap_minutes)}",
        ],
    }
    trained = {}
    for name in args.runs:
        overrides = plans[name]
        if name == "extrap":
            overrides = [*overrides, f"init_weights={best_checkpoint('default')}"]
        metrics = train(compose_run(name, overrides))
        trained[name] = {key: value for key, value in metrics.items() if key.startswith("test/")}

    cfg = compose_config(
        "compare",
        [
            f"ckpts=[{','.join(str(best_checkpoint(n)) for n in args.runs)}]",
            f"names=[{','.join(args.runs)}]",
            *data,
            "context=10",
            "horizon=10",
            "protocol=both",
            "progress=false",
            f"out={OUT / 'report'}",
            "force=true",
        ],
    )
    results = compare(cfg)
    figures = {
        protocol: {row.pop("model"): row for row in summary(by_model)}
        for protocol, by_model in results.items()
    }
    figures["vidgen_train_test"] = trained
    protocol = {
        "figures": f"{args.video.name} prepared at {args.size}, split in time with the test "
        "part last; every test window of 20 frames (10 in, 10 scored) under both protocols, "
        "copy-last on the same windows; vidgen_train_test is each run's own test report",
        "selection": "each run's checkpoint with the lowest validation loss; the defaults of "
        "prednet_own were chosen on this video's validation split",
        "budget": f"{args.minutes:g} min per t+1 run, {args.extrap_minutes:g} min of "
        "fine-tuning, run one after another",
    }
    run.write("own_video", figures, protocol, settings(args))
    for name, rows in figures.items():
        if name != "vidgen_train_test":
            print(name, {model: round(row["mse_ratio"], 3) for model, row in rows.items()})


if __name__ == "__main__":
    main()
