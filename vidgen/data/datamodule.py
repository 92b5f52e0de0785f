"""LightningDataModule over a dataset folder of ``train.h5`` / ``val.h5`` / ``test.h5``.

Training samples random ``all`` windows (``samples_per_epoch`` of them per epoch, as
PredNet's 500-sample epochs do); validation and test read windows in order (``unique`` by
default; PredNet validates on the first 100 ``all`` windows). ``val_windows`` cuts only
validation; test scores every window unless ``test_windows`` asks for fewer.

``batch_size`` is the global batch: under DDP each of W ranks reads batch_size / W windows
from its share of the same (seed, epoch) draw (``vidgen.data.samplers``), so an epoch is
``samples_per_epoch / batch_size`` optimizer steps on any number of devices, and evaluation
splits the windows across ranks without padding.

When the folder has no train split and ``generate`` is given, ``generate(out=root)`` renders
the data first, so the demo runs on a fresh machine; the synthetic data configs pass
``data_prep.synthetic.generate_dataset`` with their world's settings as a Hydra partial.

``eval_windows`` gives the held-out windows that rollout and compare score: non-overlapping,
of context plus horizon frames, cut by the same window arithmetic as training's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from vidgen.data.dataset import (
    ClipDataset,
    check_same_dataset,
    collate_windows,
    to_model_batch,
)
from vidgen.data.read_ahead import ReadAheadLoader
from vidgen.data.samplers import EpochSampler, ShardSampler
from vidgen.data.store import open_clips
from vidgen.data.windows import longest_window
from vidgen.errors import VidgenError

SPLITS = ("train", "val", "test")


def is_count(value: object, least: int) -> bool:
    """A whole number (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


class VideoDataModule(pl.LightningDataModule):
    def __init__(
        self,
        root: str | os.PathLike,
        length: int = 10,
        step: int = 1,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int | str = "auto",
        samples_per_epoch: int | None = None,
        val_windows: int | None = None,
        test_windows: int | None = None,
        train_mode: str = "all",
        eval_mode: str = "unique",
        val_mode: str | None = None,
        in_memory: bool = False,
        generate: Callable[..., object] | None = None,
        test_split: str = "test",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.length, self.step = length, step
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.samples_per_epoch = samples_per_epoch
        self.max_windows = {"train": None, "val": val_windows, "test": test_windows}
        self.modes = {"train": train_mode, "val": val_mode or eval_mode, "test": eval_mode}
        self.in_memory = in_memory
        self.generate = generate  # generate(out=root) renders the dataset; None: never
        # The file tested on, e.g. the push data's test_seen or test_novel.
        self.test_split = test_split
        self.seed = seed  # with the epoch, seeds the training draw (identical on every rank)
        self.datasets: dict[str, ClipDataset] = {}

    def split_path(self, split: str) -> Path:
        return self.root / f"{self.test_split if split == 'test' else split}.h5"

    def prepare_data(self) -> None:
        if self.generate is not None and not self.split_path("train").exists():
            self.generate(out=self.root)
        if not self.root.is_dir():
            raise VidgenError(
                f"dataset folder {self.root} does not exist; make it with vidgen-prep."
            )

    def dataset(self, split: str) -> ClipDataset:
        """The windows of one split, built once; fails in one line if the file is missing
        or comes from another conversion than the splits already built."""
        if split not in self.datasets:
            dataset = ClipDataset(
                self.split_path(split),
                self.length,
                self.step,
                mode=self.modes[split],
                in_memory=self.in_memory,
                max_windows=self.max_windows[split],
            )
            for other in self.datasets.values():
                check_same_dataset(other, dataset)
            self.datasets[split] = dataset
        return self.datasets[split]

    def eval_windows(
        self, split: str, context: int, horizon: int, horizon_past_data: bool = False
    ) -> ClipDataset:
        """Non-overlapping windows of ``split`` holding ``context`` plus ``horizon`` frames
        (every ``step``-th). With ``horizon_past_data`` the horizon may run past the clips
        (for rollouts): the windows then hold as many frames as the longest episode has."""
        for name, value in (("context", context), ("horizon", horizon)):
            if not is_count(value, 1):
                raise VidgenError(f"{name} must be at least 1 frame, got {value}.")
        self.prepare_data()
        path = self.split_path(split)
        with open_clips(path) as f:
            longest = longest_window(f["episode_starts"][()], self.step)
        if context > longest:
            raise VidgenError(
                f"context={context} is longer than the clips: the longest episode in {path} "
                f"has {longest} frames."
            )
        if not horizon_past_data and context + horizon > longest:
            raise VidgenError(
                f"context={context} plus horizon={horizon} needs clips of {context + horizon} "
                f"frames; the longest episode in {path} has {longest}."
            )
        length = min(context + horizon, longest)
        return ClipDataset(path, length, self.step, mode="unique", in_memory=self.in_memory)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(C, H, W) read from the files, for models that need the frame size."""
        split = next((s for s in SPLITS if self.split_path(s).exists()), "train")
        height, width, channels = self.dataset(split).frame_shape
        return channels, height, width

    @property
    def fps(self) -> float:
        split = next((s for s in SPLITS if self.split_path(s).exists()), "train")
        return self.dataset(split).fps

    def check_settings(self, world_size: int = 1) -> None:
        """Raise VidgenError naming the first setting that cannot work on ``world_size``
        processes (vidgen-train asks before it reads a file or starts a process)."""
        required = {
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
            "length": self.length,
            "step": self.step,
        }
        optional = {  # None: the whole split (windows) or one pass per epoch (samples)
            "samples_per_epoch": self.samples_per_epoch,
            "val_windows": self.max_windows["val"],
            "test_windows": self.max_windows["test"],
        }
        for name, value in {**required, **optional}.items():
            if not (is_count(value, 1) or (name in optional and value is None)):
                raise VidgenError(f"data.{name}={value} must be a whole number of 1 or more.")
        if self.num_workers != "auto" and not is_count(self.num_workers, 0):
            raise VidgenError(
                f"data.num_workers={self.num_workers} must be auto or a whole number >= 0."
            )
        if self.samples_per_epoch is not None and self.samples_per_epoch < self.batch_size:
            raise VidgenError(
                f"data.samples_per_epoch={self.samples_per_epoch} is less than one batch of "
                f"data.batch_size={self.batch_size}; raise it or lower the batch."
            )
        if self.batch_size % world_size:
            raise VidgenError(
                f"data.batch_size={self.batch_size} is the global batch and does not split "
                f"evenly over {world_size} processes; make it a multiple of {world_size}."
            )

    def ranks(self) -> tuple[int, int]:
        """(world size, this process's rank) of the attached trainer; (1, 0) without one."""
        if self.trainer is None:
            return 1, 0
        return self.trainer.world_size, self.trainer.global_rank

    def setup(self, stage: str | None = None) -> None:
        self.check_settings(self.ranks()[0])
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
        for split in wanted.get(stage or "", SPLITS):
            self.dataset(split)

    def workers(self, dataset: ClipDataset) -> int:
        """``num_workers``, where ``auto`` means worker processes only for compressed frames:
        uncompressed windows read in the main process cost little beside a raw h5py read,
        while handing them over from workers costs more in fresh shared memory than the read
        itself (measured by benchmarks/loader.py)."""
        if self.num_workers != "auto":
            return int(self.num_workers)
        return min(4, os.cpu_count() or 1) if dataset.compressed else 0

    def _loader(self, split: str) -> DataLoader:
        """Batches of this rank: the global batch / W for training, the eval batch / W
        (rounded up) for evaluation, where the last batch of a rank may be short. Without
        worker processes a thread reads ahead (``vidgen.data.read_ahead``)."""
        dataset = self.dataset(split)
        world, rank = self.ranks()
        workers = self.workers(dataset)
        train = split == "train"
        if train:
            drawn = self.samples_per_epoch or len(dataset)
            if drawn < self.batch_size:
                raise VidgenError(
                    f"{dataset.path} has {drawn} training windows, less than one batch of "
                    f"data.batch_size={self.batch_size}; lower the batch or set "
                    "data.samples_per_epoch."
                )
            sampler = EpochSampler(dataset, self.samples_per_epoch, self.seed, world, rank)
        else:
            if len(dataset) < world:
                raise VidgenError(
                    f"the {split} split ({dataset.path}) has {len(dataset)} windows, too few "
                    f"for {world} processes; evaluate on at most {len(dataset)} devices."
                )
            sampler = ShardSampler(dataset, world, rank)
        return ReadAheadLoader(
            dataset,
            batch_size=self.batch_size // world if train else -(-self.eval_batch_size // world),
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=train,
            collate_fn=collate_windows,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        return to_model_batch(batch)
