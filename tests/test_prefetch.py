"""The background read-ahead of loaders without worker processes."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DataLoader

from vidgen.data import ClipWriter, VideoDataModule
from vidgen.data.prefetch import PrefetchingLoader


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vidgen-prefetch"]


def test_yields_the_loaders_batches_in_order_and_reads_ahead():
    read = []

    class Recording(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> int:
            read.append(i)
            return i

    loader = PrefetchingLoader(DataLoader(Recording(), batch_size=2), depth=2)
    assert len(loader) == 3 and loader.batch_size == 2
    batches = iter(loader)
    assert next(batches).tolist() == [0, 1]
    for _ in range(100):  # the thread reads on while the first batch is being used
        if len(read) == 6:
            break
        threading.Event().wait(0.01)
    assert read == [0, 1, 2, 3, 4, 5]
    assert [b.tolist() for b in batches] == [[2, 3], [4, 5]]
    assert not reader_threads()


def test_a_read_error_arrives_with_its_batch_and_stopping_early_ends_the_thread():
    class Failing(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> int:
            if i == 4:
                raise OSError("disk gone")
            return i

    batches = iter(PrefetchingLoader(DataLoader(Failing(), batch_size=2)))
    assert [next(batches).tolist() for _ in range(2)] == [[0, 1], [2, 3]]
    with pytest.raises(OSError, match="disk gone"):
        next(batches)
    early = iter(PrefetchingLoader(DataLoader(list(range(100)), batch_size=1), depth=1))
    next(early)
    early.close()  # as when training stops mid-epoch
    assert not reader_threads()


def test_uncompressed_splits_read_ahead_and_keep_the_epoch_draw(tmp_path):
    with ClipWriter(tmp_path / "train.h5", fps=10, source="test") as writer:
        for e in range(3):
            writer.add_episode(f"e{e}", np.full((12, 8, 8, 3), e, np.uint8))
    dm = VideoDataModule(tmp_path, length=4, batch_size=2, samples_per_epoch=6)
    loader = dm.train_dataloader()
    assert isinstance(loader, PrefetchingLoader) and loader.num_workers == 0
    draws = []
    for epoch in (0, 1, 0):
        _set_sampler_epoch(loader, epoch)  # what Lightning calls each epoch
        draws.append(torch.cat([b["index"] for b in loader]).tolist())
    assert draws[0] == draws[2] != draws[1]
