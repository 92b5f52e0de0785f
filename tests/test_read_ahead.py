"""The background read-ahead of loaders without worker processes."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import Dataset

from vidgen.data import ClipWriter, VideoDataModule
from vidgen.data.read_ahead import ReadAheadLoader


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vidgen-read-ahead"]


class Numbers(Dataset):
    """0 .. size-1, recording what was read; ``fail_at`` raises there."""

    def __init__(self, size: int, fail_at: int | None = None) -> None:
        self.size, self.fail_at, self.read = size, fail_at, []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> int:
        if i == self.fail_at:
            raise OSError("disk gone")
        self.read.append(i)
        return i


def test_yields_the_loaders_batches_in_order_and_reads_ahead():
    numbers = Numbers(6)
    loader = ReadAheadLoader(numbers, batch_size=2)
    assert len(loader) == 3
    batches = iter(loader)
    assert next(batches).tolist() == [0, 1]
    for _ in range(100):  # the thread reads on while the first batch is being used
        if len(numbers.read) == 6:
            break
        threading.Event().wait(0.01)
    assert numbers.read == [0, 1, 2, 3, 4, 5]
    assert [b.tolist() for b in batches] == [[2, 3], [4, 5]]
    assert not reader_threads()


def test_a_read_error_arrives_with_its_batch_and_stopping_early_ends_the_thread():
    batches = iter(ReadAheadLoader(Numbers(10, fail_at=4), batch_size=2))
    assert [next(batches).tolist() for _ in range(2)] == [[0, 1], [2, 3]]
    with pytest.raises(OSError, match="disk gone"):
        next(batches)
    early = iter(ReadAheadLoader(Numbers(100), batch_size=1))
    next(early)
    early.close()  # as when training stops mid-epoch
    assert not reader_threads()


def write_uncompressed(folder, splits=("train",)) -> None:
    for split in splits:
        path = folder / f"{split}.h5"
        with ClipWriter(path, fps=10, source="test", dataset_id="one") as writer:
            for e in range(3):
                writer.add_episode(f"e{e}", np.full((12, 8, 8, 3), e, np.uint8))


def test_uncompressed_splits_read_ahead_and_keep_the_epoch_draw(tmp_path):
    write_uncompressed(tmp_path)
    dm = VideoDataModule(tmp_path, length=4, batch_size=2, samples_per_epoch=6)
    loader = dm.train_dataloader()
    assert isinstance(loader, ReadAheadLoader) and loader.num_workers == 0
    draws = []
    for epoch in (0, 1, 0):
        _set_sampler_epoch(loader, epoch)  # what Lightning calls each epoch
        draws.append(torch.cat([b["index"] for b in loader]).tolist())
    assert draws[0] == draws[2] != draws[1]


class MeanFrame(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.level = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        return (batch["frames"].float().mean() / 255 - self.level) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_can_rebuild_the_loader_to_overfit_batches(tmp_path):
    """overfit_batches makes Lightning re-create the loader from its arguments."""
    write_uncompressed(tmp_path, ("train", "val"))
    dm = VideoDataModule(tmp_path, length=4, batch_size=2, samples_per_epoch=6)
    trainer = pl.Trainer(
        overfit_batches=2, max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(MeanFrame(), datamodule=dm)
    assert trainer.global_step == 4
