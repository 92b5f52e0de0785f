"""One recipe on any number of processes: the epoch-seeded training draw and its per-rank
shares, evaluation shards without padding, the DataModule's settings, and simulated DDP
(two CPU processes, gloo) against one process on the same weights."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import hydra
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from conftest import compose_train
from vidgen.cli.train import CONFIG_DIR, train
from vidgen.data import VideoDataModule
from vidgen.data.samplers import EpochSampler, ShardSampler
from vidgen.errors import VidgenError


def shares(num_windows: int, num_samples: int | None, world: int, epoch: int = 0, seed: int = 7):
    """Each rank's training indices for one epoch."""
    out = []
    for rank in range(world):
        sampler = EpochSampler(range(num_windows), num_samples, seed, world, rank)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


@pytest.mark.parametrize("world", [2, 3, 4])
def test_rank_shares_interleave_into_the_one_process_draw(world):
    (one,) = shares(7, 20, world=1)
    # 20 draws from 7 windows: two whole permutations, then 6 of a third.
    assert sorted(one[:7]) == sorted(one[7:14]) == list(range(7)) and len(one) == 20
    ranks = shares(7, 20, world)
    kept = 20 - 20 % world  # every rank yields as many indices
    assert [len(share) for share in ranks] == [kept // world] * world
    assert [ranks[i % world][i // world] for i in range(kept)] == one[:kept]


def test_each_step_of_all_ranks_reads_the_one_process_batch():
    """Global batch 4 on 2 ranks (2 each): step k together reads draw[4k : 4k + 4]."""
    (one,) = shares(9, 10, world=1)
    ranks = shares(9, 10, world=2)
    steps = 10 // 4  # drop_last, as the training loader
    for k in range(steps):
        together = ranks[0][2 * k : 2 * k + 2] + ranks[1][2 * k : 2 * k + 2]
        assert sorted(together) == sorted(one[4 * k : 4 * k + 4])
    assert len(ranks[0]) // 2 == steps


def test_draw_is_reproducible_per_epoch_and_seed():
    assert shares(50, 30, 2, epoch=3) == shares(50, 30, 2, epoch=3)
    assert shares(50, 30, 2, epoch=3) != shares(50, 30, 2, epoch=4)
    assert shares(50, 30, 2, seed=1) != shares(50, 30, 2, seed=2)
    # None: one pass over every window per epoch
    (one,) = shares(11, None, world=1)
    assert sorted(one) == list(range(11))


@pytest.mark.parametrize(("windows", "world"), [(7, 2), (7, 3), (3, 4), (5, 1)])
def test_eval_shards_are_disjoint_and_complete_without_padding(windows, world):
    shards = [list(ShardSampler(range(windows), world, rank)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(windows))
    assert [len(ShardSampler(range(windows), world, r)) for r in range(world)] == [
        len(shard) for shard in shards
    ]
    assert shards[0][:2] == list(range(0, min(windows, 2 * world), world))


def rank_loaders(dataset, world: int, split: str, **settings) -> list[list[torch.Tensor]]:
    """The window indices of every batch of each rank's ``split`` loader."""
    out = []
    for rank in range(world):
        dm = VideoDataModule(dataset, length=8, num_workers=0, **settings)
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)
        dm.setup()
        loader = getattr(dm, f"{split}_dataloader")()
        out.append([batch["index"] for batch in loader])
    return out


def test_datamodule_keeps_steps_per_epoch_and_batches_on_any_world(tiny_dataset):
    settings = {"batch_size": 4, "samples_per_epoch": 10, "seed": 3}
    (one,) = rank_loaders(tiny_dataset, 1, "train", **settings)
    assert [len(b) for b in one] == [4, 4]  # 10 samples / global batch 4, the rest dropped
    for world in (2, 4):
        ranks = rank_loaders(tiny_dataset, world, "train", **settings)
        assert [len(batches) for batches in ranks] == [2] * world
        for step, batch in enumerate(one):
            together = torch.cat([batches[step] for batches in ranks])
            assert sorted(together.tolist()) == sorted(batch.tolist())


def test_test_split_is_scored_whole_and_split_once_across_ranks(tiny_dataset):
    # The test episode has 24 frames: 3 unique windows of 8, whatever val_windows says.
    (one,) = rank_loaders(tiny_dataset, 1, "test", batch_size=2, val_windows=1)
    assert torch.cat(one).tolist() == [0, 1, 2]
    (cut,) = rank_loaders(tiny_dataset, 1, "test", batch_size=2, test_windows=2)
    assert torch.cat(cut).tolist() == [0, 1]
    (val,) = rank_loaders(tiny_dataset, 1, "val", batch_size=2, val_windows=1)
    assert torch.cat(val).tolist() == [0]
    ranks = rank_loaders(tiny_dataset, 2, "test", batch_size=2)
    assert [torch.cat(batches).tolist() for batches in ranks] == [[0, 2], [1]]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 0}, "data.batch_size=0 must be a whole number of 1 or more"),
        ({"batch_size": "abc"}, "data.batch_size=abc must be"),
        ({"num_workers": -1}, "data.num_workers=-1 must be auto or a whole number >= 0"),
        ({"samples_per_epoch": 3, "batch_size": 4}, "data.samples_per_epoch=3 is less than"),
        ({"length": 0}, "data.length=0 must be"),
        ({"step": -2}, "data.step=-2 must be"),
        ({"test_windows": 0}, "data.test_windows=0 must be"),
        ({"batch_size": 6, "world": 4}, "data.batch_size=6 is the global batch"),
    ],
)
def test_datamodule_settings_fail_in_one_line(tiny_dataset, settings, message):
    world = settings.pop("world", 1)
    dm = VideoDataModule(tiny_dataset, **settings)
    with pytest.raises(VidgenError, match=message) as error:
        dm.check_settings(world)
    assert "\n" not in str(error.value)


def test_fewer_windows_than_processes_fail_in_one_line(tiny_dataset):
    with pytest.raises(VidgenError, match="has 1 windows, too few for 2 processes"):
        rank_loaders(tiny_dataset, 2, "val", batch_size=2, val_windows=1)


def test_train_rejects_a_batch_that_does_not_split_before_starting(tmp_path, two_process_overrides):
    cfg = compose_train([*two_process_overrides, "data.batch_size=3"], tmp_path)
    with pytest.raises(VidgenError, match="does not split evenly over 2 processes"):
        train(cfg)


def run_overrides(dataset: Path, processes: int) -> list[str]:
    """A tiny PredNet on 8-frame windows (3 test windows: padding would count one twice),
    plain SGD so that equal gradients give equal weights, 10 samples per epoch in global
    batches of 4: two optimizer steps."""
    return [
        "experiment=demo", f"data.root={dataset}", "data.num_workers=0", "data.length=8",
        "data.batch_size=4", "data.samples_per_epoch=10", "model.eval_horizon=7",
        "model.optimizer._target_=torch.optim.SGD", "model.optimizer.lr=0.5", "logger=csv",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "callbacks.rollout_strip.every_n_epochs=1",
        *(["trainer=ddp_sim", f"trainer.devices={processes}"] if processes > 1 else
          ["trainer.accelerator=cpu", "trainer.devices=1"]),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory, tiny_dataset) -> tuple[DictConfig, dict, Path]:
    """Config, test metrics and checkpoint of one epoch on one process."""
    out = tmp_path_factory.mktemp("one_process")
    cfg = compose_train(run_overrides(tiny_dataset, 1), out)
    return cfg, train(cfg), out / "checkpoints" / "epoch_000.ckpt"  # the one tested


def test_two_processes_test_a_checkpoint_as_one_does(one_process_run, tiny_dataset, tmp_path):
    _, one, checkpoint = one_process_run
    overrides = [*run_overrides(tiny_dataset, 2), "train=false", f"ckpt_path={checkpoint}"]
    two = train(compose_train(overrides, tmp_path))
    names = [k for k in one if k.startswith("test/")]
    assert {"test/mse", "test/ssim", "test/copy_last_mse", "test/loss"} <= set(names)
    for name in names:
        assert two[name] == pytest.approx(one[name], rel=1e-5, abs=1e-7), name


def test_two_processes_take_the_same_steps_to_the_same_weights(
    one_process_run, tiny_dataset, tmp_path
):
    cfg, _, checkpoint = one_process_run
    train(compose_train([*run_overrides(tiny_dataset, 2), "test=false"], tmp_path))
    one = torch.load(checkpoint, map_location="cpu", weights_only=True)
    two = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert one["global_step"] == two["global_step"] == 10 // 4
    pl.seed_everything(cfg.seed)
    start = hydra.utils.instantiate(cfg.model).state_dict()
    assert any(not torch.equal(start[k], w) for k, w in one["state_dict"].items() if k in start)
    for name, weight in one["state_dict"].items():
        torch.testing.assert_close(two["state_dict"][name], weight, rtol=1e-4, atol=1e-6)


def test_no_config_cuts_the_test_split():
    for path in (CONFIG_DIR / "data").glob("*.yaml"):
        data = OmegaConf.load(path)
        assert "test_windows" in data and data.test_windows is None, path.name
    for path in (CONFIG_DIR / "experiment").glob("*.yaml"):
        assert OmegaConf.select(OmegaConf.load(path), "data.test_windows") is None, path.name


@pytest.mark.parametrize(
    ("experiment", "epochs_before_change"),
    [("prednet_kitti", 75), ("billiards_oc_cpu", 1), ("billiards_fc_cpu", 1)],
)
def test_lr_schedules_count_steps_as_the_published_epochs(
    tmp_path, experiment, epochs_before_change
):
    """The first lr change comes after the published number of epochs, counted in steps.
    (The demo's schedule is a fraction of the run: tests/test_schedules.py.)"""
    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    steps_per_epoch = cfg.data.samples_per_epoch // cfg.data.batch_size
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = hydra.utils.instantiate(cfg.model.scheduler)(optimizer=optimizer)
    for _ in range(epochs_before_change * steps_per_epoch - 1):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == [1.0]
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(cfg.model.scheduler.gamma)


def test_tasks_step_their_schedulers_per_optimizer_step(tmp_path):
    cfg = compose_train(["experiment=demo"], tmp_path)
    config = hydra.utils.instantiate(cfg.model).configure_optimizers()
    assert config["lr_scheduler"]["interval"] == "step"


class TrainWindows(pl.Callback):
    """The window indices of every training batch, by epoch."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.by_epoch.setdefault(trainer.current_epoch, []).extend(batch["index"].tolist())


def test_lightning_moves_the_draw_to_each_epoch(tiny_dataset, tmp_path):
    cfg = compose_train(run_overrides(tiny_dataset, 1), tmp_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    task = hydra.utils.instantiate(cfg.model)
    seen = TrainWindows()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[seen])  # fmt: skip
    trainer.fit(task, datamodule=datamodule)
    train_windows = len(datamodule.dataset("train"))
    for epoch in (0, 1):
        (draw,) = shares(train_windows, 10, world=1, epoch=epoch, seed=cfg.seed)
        assert seen.by_epoch[epoch] == draw[:8]  # two steps of 4
