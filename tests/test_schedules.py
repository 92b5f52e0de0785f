"""RunFractionLR: learning-rate drops at fractions of the planned run, however its length is
set (max_steps, max_epochs or max_time), through PredictorTask's own optimizer wiring."""

from __future__ import annotations

import functools
import io

import hydra
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer
from torch.utils.data import DataLoader, TensorDataset

import vidgen
from conftest import compose_train
from test_security import assert_refused, inside, write_checkpoint
from vidgen.errors import VidgenError
from vidgen.tasks import PredictorTask
from vidgen.tasks.schedules import RunFractionLR

BATCHES_PER_EPOCH = 5
SCHEDULE = "vidgen.tasks.schedules.RunFractionLR"


class LinearTask(PredictorTask):
    """A linear layer on random points: PredictorTask's optimizer and scheduler, nothing else."""

    def __init__(self) -> None:
        optimizer = functools.partial(torch.optim.SGD, lr=1.0)
        super().__init__(optimizer, functools.partial(RunFractionLR, milestones=[0.8]))
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()


class RecordLR(pl.Callback):
    """The learning rate each optimizer step runs at."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def fit(record: RecordLR | None = None, **limits) -> list[float]:
    """Train LinearTask under ``limits``; the learning rate of every step."""
    record = record or RecordLR()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[record], **limits,
    )  # fmt: skip
    data = DataLoader(TensorDataset(torch.randn(2 * BATCHES_PER_EPOCH, 2)), batch_size=2)
    trainer.fit(LinearTask(), data)
    return record.lrs


@pytest.mark.parametrize(
    ("limits", "steps"),
    [
        ({"max_steps": 20}, 20),
        ({"max_epochs": 4}, 20),
        ({"max_epochs": 8}, 40),  # a longer run drops later, not at the same step
        ({"max_steps": 20, "max_epochs": 100}, 20),  # the limit reached first decides
        ({"max_epochs": 4, "max_steps": 1000}, 20),
    ],
)
def test_the_drop_comes_at_the_fraction_of_steps_or_epochs(limits, steps):
    drop = int(0.8 * steps)
    assert fit(**limits) == pytest.approx([1.0] * drop + [0.1] * (steps - drop))


def test_the_drop_comes_at_the_fraction_of_max_time(monkeypatch):
    """A clock of 10 s per step begun against 100 s: the rate drops once 80 s have passed,
    from step 8, and the Timer ends the run after step 10."""
    record = RecordLR()
    monkeypatch.setattr(Timer, "time_elapsed", lambda self, stage="train": 10.0 * len(record.lrs))
    assert fit(record, max_time={"seconds": 100}) == pytest.approx([1.0] * 8 + [0.1] * 2)


def test_a_run_no_limit_ends_is_refused_in_one_line():
    with pytest.raises(VidgenError, match="trainer.max_time") as refused:
        fit(max_epochs=-1)
    assert "\n" not in str(refused.value)


def stepped(scheduler: RunFractionLR, fraction: float) -> float:
    """The learning rate after one step taken at ``fraction`` of the run."""
    scheduler.bind(lambda: fraction)
    scheduler.optimizer.step()
    scheduler.step()
    return scheduler.get_last_lr()[0]


def sgd() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)


def test_warm_up_ramps_linearly_then_drops():
    scheduler = RunFractionLR(sgd(), milestones=[0.8], warmup=0.5, warmup_start=0.1)
    assert scheduler.get_last_lr() == [pytest.approx(0.1)]  # unbound: the start of the run
    ramp = [stepped(scheduler, f) for f in (0.0, 0.1, 0.2, 0.3, 0.4)]
    assert ramp == pytest.approx([0.1, 0.28, 0.46, 0.64, 0.82])
    assert [stepped(scheduler, f) for f in (0.5, 0.79, 0.8, 1.0)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1]
    )


@pytest.mark.parametrize(
    "settings",
    [{"milestones": [0.9, 0.5]}, {"milestones": [400]}, {"milestones": [0.8], "warmup": 1.0}],
)
def test_settings_outside_the_run_are_refused_in_one_line(settings):
    with pytest.raises(VidgenError) as refused:
        RunFractionLR(sgd(), **settings)
    assert "\n" not in str(refused.value)


def test_state_dict_round_trips_without_the_progress_source():
    trained = RunFractionLR(sgd(), milestones=[0.5, 0.8])
    stepped(trained, 0.6)
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # as Lightning reads a checkpoint
    assert "_progress" not in state
    resumed = RunFractionLR(sgd(), milestones=[0.5, 0.8])
    resumed.bind(lambda: 0.9)
    resumed.load_state_dict(state)
    assert resumed.get_last_lr() == [pytest.approx(0.1)]
    assert resumed.last_epoch == trained.last_epoch and resumed.milestones == [0.5, 0.8]
    resumed.optimizer.step()
    resumed.step()  # the binding it was loaded into still reads the run
    assert resumed.get_last_lr() == [pytest.approx(0.01)]


def test_the_demo_drops_at_a_fraction_that_is_step_640_at_its_length(tmp_path):
    cfg = compose_train([], tmp_path)  # what `vidgen-train data=<folder>` starts from
    assert cfg.task_name == "demo" and cfg.model.scheduler._target_ == SCHEDULE
    steps = cfg.trainer.max_epochs * cfg.data.samples_per_epoch // cfg.data.batch_size
    scheduler = hydra.utils.instantiate(cfg.model).configure_optimizers()["lr_scheduler"]
    assert isinstance(scheduler["scheduler"], RunFractionLR) and scheduler["interval"] == "step"
    factor = scheduler["scheduler"].factor
    assert (steps, factor(639 / steps), factor(640 / steps)) == (800, 1.0, pytest.approx(0.1))


def test_a_checkpoint_with_the_schedule_loads_and_a_neighbour_is_refused(tmp_path):
    schedule = {"_target_": SCHEDULE, "_partial_": True, "milestones": [0.8], "gamma": 0.1}
    config = inside("scheduler", schedule)
    model = vidgen.load(write_checkpoint(tmp_path / "fraction.ckpt", config))
    assert model.config == config and model.scheduler_factory.func is RunFractionLR
    for name, refused in {
        "neighbour": {**schedule, "_target_": "vidgen.tasks.schedules.run_progress"},
        "not_partial": {**schedule, "_partial_": False},
    }.items():
        ckpt = write_checkpoint(tmp_path / f"{name}.ckpt", inside("scheduler", refused))
        assert_refused(ckpt, rf"^\S*{name}.ckpt is refused: model.scheduler._target_ names '")
