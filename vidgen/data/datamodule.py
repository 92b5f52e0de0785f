"""LightningDataModule over a dataset folder of ``train.h5`` / ``val.h5`` / ``test.h5``.

Training samples random ``all`` windows (``samples_per_epoch`` of them per epoch, as
PredNet's 500-sample epochs do); validation and test read windows in order (``unique`` by
default; PredNet validates on the first 100 ``all`` windows).
When the folder is missing and ``generate`` names a synthetic world, the data is rendered
first, so the demo runs on a fresh machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, RandomSampler

from vidgen.data.dataset import ClipDataset, collate_windows, to_model_batch
from vidgen.errors import VidgenError

SPLITS = ("train", "val", "test")


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
        train_mode: str = "all",
        eval_mode: str = "unique",
        val_mode: str | None = None,
        in_memory: bool = False,
        generate: Mapping[str, object] | None = None,
        test_split: str = "test",
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.length, self.step = length, step
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.samples_per_epoch = samples_per_epoch
        self.val_windows = val_windows
        self.modes = {"train": train_mode, "val": val_mode or eval_mode, "test": eval_mode}
        self.in_memory = in_memory
        self.generate = dict(generate) if generate else None
        # The file tested on, e.g. the push data's test_seen or test_novel.
        self.test_split = test_split
        self.datasets: dict[str, ClipDataset] = {}

    def split_path(self, split: str) -> Path:
        return self.root / f"{self.test_split if split == 'test' else split}.h5"

    def prepare_data(self) -> None:
        if self.generate and not self.split_path("train").exists():
            from data_prep.synthetic import generate_dataset

            generate_dataset(out=self.root, **self.generate)
        if not self.root.is_dir():
            raise VidgenError(
                f"dataset folder {self.root} does not exist; make it with vidgen-prep."
            )

    def dataset(self, split: str) -> ClipDataset:
        """The windows of one split, built once; fails in one line if the file is missing."""
        if split not in self.datasets:
            train = split == "train"
            self.datasets[split] = ClipDataset(
                self.split_path(split),
                self.length,
                self.step,
                mode=self.modes[split],
                in_memory=self.in_memory,
                max_windows=None if train else self.val_windows,
            )
        return self.datasets[split]

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

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
        for split in wanted.get(stage or "", SPLITS):
            self.dataset(split)

    def workers(self, dataset: ClipDataset) -> int:
        """``num_workers``, where ``auto`` means worker processes only for compressed frames:
        uncompressed windows read in the main process at ~0.8x a raw h5py read, while
        handing them over from workers costs more in fresh shared memory than the read itself
        (benchmarks/loader.py)."""
        if self.num_workers != "auto":
            return int(self.num_workers)
        return min(4, os.cpu_count() or 1) if dataset.compressed else 0

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        workers = self.workers(dataset)
        sampler = None
        if shuffle:
            sampler = RandomSampler(dataset, num_samples=self.samples_per_epoch)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=shuffle,
            collate_fn=collate_windows,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        return to_model_batch(batch)
