"""End-to-end overhead of ``vidgen-train``: its training step rate, with everything a run
does around the model (loader, metrics, logging, checkpointing), as a
ratio to the bare model stepping on the same batches held in memory, measured in the same
run (goal: >= 0.9).

Two cases, each the config ``vidgen-train`` composes for it:
- demo: the main job (PredNet on bouncing balls, 64x64 LZF frames, worker processes);
- own_video: ``data=<folder>`` (experiment prednet_own) on 64x80 camera-like frames stored
  uncompressed, as the video converter writes them, read in the training process.

The run's time counts from the end of its first step (worker start-up and the first
step's allocations are one-off costs, and the bare loop skips its first step too) to the end
of training, less the validation loops (with their rollout strips); the checkpoints saved
after validation count.

    python -m benchmarks.overhead [--steps 150 --cases demo own_video]

Record: benchmarks/results/overhead.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import open_dict

from benchmarks.record import WORK, Run, parser, settings
from data_prep.common import SplitWriter
from vidgen.cli.train import compose_config, data_folder_overrides, train
from vidgen.data import to_model_batch


class TrainingClock(pl.Callback):
    """Seconds and optimizer steps of training after the first step, validation left out.
    The run builds it from its config; ``latest`` is the one built last."""

    latest: TrainingClock | None = None

    def __init__(self) -> None:
        self.seconds, self.steps, self._since = 0.0, 0, None
        TrainingClock.latest = self

    def _stop(self) -> None:
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == 1 and self._since is None and self.seconds == 0:
            self._since = time.perf_counter()  # the clock starts after the first step

    def on_validation_start(self, trainer, pl_module) -> None:
        self._stop()

    def on_validation_end(self, trainer, pl_module) -> None:
        # Runs before ModelCheckpoint's (Lightning calls checkpoint callbacks last): the
        # checkpoint saved after validation is on the clock.
        if not trainer.sanity_checking and trainer.global_step >= 1:
            self._since = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop()
        self.steps = trainer.global_step - 1


def write_camera_like(folder: Path) -> None:
    """train/val/test of 64x80 noise frames (incompressible, like camera footage), raw."""
    if (folder / "train.h5").exists():
        return
    rng = np.random.default_rng(0)
    with SplitWriter(folder, fps=10, source="benchmark") as writer:
        for split, episodes in (("train", 8), ("val", 1), ("test", 1)):
            for e in range(episodes):
                frames = rng.integers(0, 256, (300, 64, 80, 3), dtype=np.uint8)
                writer.add(split, f"{split}_{e}", frames)


def case_overrides(case: str, out: Path) -> list[str]:
    common = [
        f"paths.output_dir={out / case / 'run'}",
        f"paths.log_dir={out / case}",
        "trainer.enable_progress_bar=false",
        "test=false",
    ]
    if case == "demo":
        return [f"paths.data_dir={out / 'data'}", *common]
    folder = out / "data" / "camera_like"
    write_camera_like(folder)
    return [*data_folder_overrides([f"data={folder}"], training=True), *common]


def bare_steps_per_second(cfg, steps: int) -> tuple[float, int]:
    """The task built from ``cfg`` stepping (loss, backward, Adam) on ``steps`` + 1 batches
    of its training loader, read into memory first; the first step is not timed."""
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    task = hydra.utils.instantiate(cfg.model)
    optimizer = task.optimizer_factory(params=task.parameters())
    batches = []
    while len(batches) <= steps:  # an epoch may hold fewer batches than steps
        batches += [to_model_batch(b) for b in datamodule.train_dataloader()]
    batches = batches[: steps + 1]

    def step(batch: dict[str, torch.Tensor]) -> None:
        task.loss(batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    return steps / (time.perf_counter() - start), len(batches[0]["frames"])


def measure(case: str, steps: int, out: Path) -> dict[str, float]:
    overrides = case_overrides(case, out)
    cfg = compose_config("train", [*overrides, f"+trainer.max_steps={steps + 1}"])
    bare, batch = bare_steps_per_second(cfg, steps)
    with open_dict(cfg):
        cfg.callbacks["overhead_clock"] = {"_target_": f"{__name__}.TrainingClock"}
    train(cfg)
    clock = TrainingClock.latest
    run = clock.steps / clock.seconds
    return {
        "batch": batch,
        "timed_steps": clock.steps,
        "bare_steps_per_s": bare,
        "train_steps_per_s": run,
        "ratio": run / bare,
    }


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--steps", type=int, default=150, help="timed steps per case")
    args_parser.add_argument("--cases", nargs="+", default=["demo", "own_video"])
    args = args_parser.parse_args()
    run = Run(args.results)
    out = WORK / "overhead"
    figures = {case: measure(case, args.steps, out) for case in args.cases}
    protocol = {
        "figures": f"{args.steps} training steps after one untimed step, per case: vidgen-train "
        "(validation loops left out, checkpoints saved after them counted) against the bare "
        "model's loss, backward and Adam step on the same loader's batches held in memory"
    }
    run.write("overhead", figures, protocol, settings(args))
    for case, f in figures.items():
        print(
            f"{case}: bare {f['bare_steps_per_s']:.2f} steps/s, vidgen-train "
            f"{f['train_steps_per_s']:.2f} steps/s -> {f['ratio']:.2f} (goal >= 0.9)"
        )


if __name__ == "__main__":
    main()
