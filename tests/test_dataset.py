"""ClipDataset and VideoDataModule: items, lazy opening in workers, batches."""

from __future__ import annotations

import pickle

import hydra
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from conftest import compose_train
from data_prep.synthetic import generate_dataset
from vidgen.data import (
    ClipDataset,
    ClipWriter,
    VideoDataModule,
    collate_windows,
    open_clips,
    to_model_batch,
)


def test_items_are_the_stored_frames(tiny_dataset):
    ds = ClipDataset(tiny_dataset / "train.h5", length=5, step=2)
    item = ds[3]
    with open_clips(tiny_dataset / "train.h5") as f:
        start = int(ds.starts[3])
        expected = f["frames"][start : start + 9 : 2]
        positions = f["objects/positions"][start : start + 9 : 2]
    assert item["frames"].dtype == torch.uint8
    np.testing.assert_array_equal(item["frames"].numpy(), expected)
    np.testing.assert_array_equal(item["objects/positions"].numpy(), positions)


def test_in_memory_matches_lazy(tiny_dataset):
    lazy = ClipDataset(tiny_dataset / "val.h5", length=6, mode="unique")
    memory = ClipDataset(tiny_dataset / "val.h5", length=6, mode="unique", in_memory=True)
    assert len(lazy) == len(memory) == 4
    for i in range(len(lazy)):
        assert torch.equal(lazy[i]["frames"], memory[i]["frames"])


def test_lazy_open_under_two_workers(tiny_dataset):
    ds = ClipDataset(tiny_dataset / "train.h5", length=4)
    ds[0]  # opens a handle in this process; it must not travel to the workers
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    loader = DataLoader(ds, batch_size=8, num_workers=2, shuffle=True)
    seen = torch.cat([batch["index"] for batch in loader])
    assert sorted(seen.tolist()) == list(range(len(ds)))


@pytest.mark.parametrize("step", [1, 2])
def test_batched_reads_match_single_windows(tiny_dataset, step):
    ds = ClipDataset(tiny_dataset / "train.h5", length=4, step=step)
    indices = [5, 0, 11, 5]
    expected = default_collate([ds[i] for i in indices])
    # In workers the batch arrives in shared memory and collate_windows passes it through;
    # the default collate_fn stacks the per-window views and gets the same batch.
    for collate_fn, workers in ((collate_windows, 2), (default_collate, 0)):
        loader = DataLoader(
            ds, batch_size=4, sampler=indices, num_workers=workers, collate_fn=collate_fn
        )
        (batch,) = list(loader)
        assert batch.keys() == expected.keys()
        for key in expected:
            assert torch.equal(batch[key], expected[key]), key


def test_auto_workers_only_for_compressed_frames(tiny_dataset, tmp_path):
    with ClipWriter(tmp_path / "train.h5", fps=10, source="test") as writer:
        writer.add_episode("a", np.zeros((12, 16, 16, 3), np.uint8))
    compressed = VideoDataModule(tiny_dataset)
    uncompressed = VideoDataModule(tmp_path)
    assert compressed.workers(compressed.dataset("train")) >= 1
    assert uncompressed.workers(uncompressed.dataset("train")) == 0
    explicit = VideoDataModule(tmp_path, num_workers=3)
    assert explicit.workers(explicit.dataset("train")) == 3


def test_datamodule_batches_are_float_btchw(tiny_dataset):
    dm = VideoDataModule(tiny_dataset, length=6, batch_size=3, num_workers=0, samples_per_epoch=9)
    dm.setup("fit")
    assert dm.frame_shape == (3, 32, 32)
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    batch = dm.on_after_batch_transfer(batches[0], 0)
    assert batch["frames"].shape == (3, 6, 3, 32, 32)
    assert batch["frames"].dtype == torch.float32
    assert batch["frames"].min() >= 0.0 and batch["frames"].max() <= 1.0
    raw = batches[0]["frames"][0, 2]  # H W C uint8
    assert torch.allclose(batch["frames"][0, 2], raw.permute(2, 0, 1).float() / 255)


def test_batch_is_the_collated_model_batch(tiny_dataset):
    ds = ClipDataset(tiny_dataset / "train.h5", length=4, step=2)
    indices = [7, 0, 7]
    batch = ds.batch(indices)
    expected = to_model_batch(default_collate([ds[i] for i in indices]))
    assert batch.keys() == expected.keys() and batch["index"].tolist() == indices
    assert batch["frames"].shape == (3, 4, 3, 32, 32) and batch["frames"].dtype == torch.float32
    for key in expected:
        assert torch.equal(batch[key], expected[key]), key
    assert ds.batch(range(2))["index"].tolist() == [0, 1]


def test_to_model_batch_keeps_other_keys():
    batch = {"frames": torch.zeros(2, 3, 4, 4, 3, dtype=torch.uint8), "actions": torch.ones(2, 3)}
    out = to_model_batch(batch)
    assert out["frames"].shape == (2, 3, 3, 4, 4)
    assert out["actions"] is batch["actions"]


def test_a_synthetic_data_config_renders_its_dataset_on_first_use(tmp_path):
    root = tmp_path / "balls"
    small = ["data.generate.episodes=3", "data.generate.frames=4", "data.generate.size=8"]
    cfg = compose_train(["experiment=demo", f"data.root={root}", *small], tmp_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    assert datamodule.generate.func is generate_dataset  # injected: a partial from the config
    datamodule.prepare_data()
    assert sorted(p.name for p in root.iterdir()) == ["test.h5", "train.h5", "val.h5"]
    assert VideoDataModule(root, length=4).frame_shape == (3, 8, 8)
    cfg = compose_train(["experiment=demo", f"data.root={root}", "~data.generate"], tmp_path)
    assert hydra.utils.instantiate(cfg.data).generate is None
