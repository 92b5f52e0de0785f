"""The training stack: config composition, fast_dev_run of every experiment, simulated
DDP, resume, the test-only path and the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import hydra
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import ListConfig
from torch.utils.data import DataLoader

from conftest import compose_train, experiments_of, trained_checkpoint
from test_vgan import EXPERIMENTS as GAN_EXPERIMENTS
from test_vgan import SMALL as SMALL_GAN
from vidgen.cli.train import CONFIG_DIR, data_folder_overrides, train
from vidgen.data import ClipDataset, summarize
from vidgen.errors import VidgenError
from vidgen.eval import FRAME_SUM_NAMES, METRIC_NAMES

EXPERIMENTS = experiments_of("prednet")
TRAINABLE = [e for e in EXPERIMENTS if not e.endswith("_eval")]
SMALL_PREDNET = ["model.net.stack_sizes=[3,8,16,32]", "model.net.r_stack_sizes=[3,8,16,32]"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment, tmp_path, tiny_dataset):
    extra = ["ckpt_path=unused.ckpt"] if experiment.endswith("_eval") else []
    cfg = compose_train([f"experiment={experiment}", f"data.root={tiny_dataset}", *extra], tmp_path)
    assert cfg.task_name == experiment
    task = hydra.utils.instantiate(cfg.model)
    datamodule = hydra.utils.instantiate(cfg.data)
    trainer = hydra.utils.instantiate(cfg.trainer)
    assert hasattr(task, "rollout") and datamodule.length >= task.eval_context + task.eval_horizon
    assert trainer.max_epochs == cfg.trainer.max_epochs


def test_paper_experiment_is_the_paper_recipe(tmp_path):
    cfg = compose_train(["experiment=prednet_kitti"], tmp_path)
    assert list(cfg.model.net.stack_sizes) == [3, 48, 96, 192]
    assert (cfg.data.length, cfg.data.batch_size, cfg.data.samples_per_epoch) == (10, 4, 500)
    # the lr drop after epoch 75, in optimizer steps: 75 x 500 / 4
    assert cfg.trainer.max_epochs == 150 and list(cfg.model.scheduler.milestones) == [9375]
    assert cfg.model.optimizer.lr == 1e-3 and cfg.model.scheduler.gamma == 0.1


@pytest.fixture(scope="module")
def kitti_checkpoint(tmp_path_factory, tiny_dataset):
    """A real checkpoint from two training steps of the paper network."""
    extra = ["callbacks.rollout_strip.every_n_epochs=1"]
    return trained_checkpoint("prednet_kitti", tiny_dataset, tmp_path_factory.mktemp("run"), extra)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_dev_run_of_every_experiment(experiment, tmp_path, tiny_overrides, kitti_checkpoint):
    extra = [f"ckpt_path={kitti_checkpoint}"] if experiment.endswith("_eval") else []
    cfg = compose_train(
        [f"experiment={experiment}", *tiny_overrides, "+trainer.fast_dev_run=true", *extra],
        tmp_path,
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["test/mse"]))
    assert metrics["test/copy_last_mse"] > 0


class StepValues(pl.Callback):
    """Records one logged value after every training batch."""

    def __init__(self, key: str) -> None:
        self.key, self.values = key, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(trainer.callback_metrics[self.key].item())


def steps_on_one_batch(cfg, key: str, steps: int, freeze: str | None = None) -> list[float]:
    """The experiment's task, with its own training_step and optimizers, run ``steps``
    times on one fixed batch of the tiny dataset; ``key`` as logged after each step."""
    torch.manual_seed(0)
    task = hydra.utils.instantiate(cfg.model)
    if freeze:
        getattr(task, freeze).requires_grad_(False)
    windows = ClipDataset(f"{cfg.data.root}/train.h5", cfg.data.length, in_memory=True)
    batch = windows.batch(range(2))
    recorder = StepValues(key)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
                         limit_val_batches=0, callbacks=[recorder])  # fmt: skip
    trainer.fit(task, DataLoader([batch] * steps, batch_size=None))
    return recorder.values


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.parametrize("experiment", TRAINABLE)
def test_every_experiment_lowers_its_loss_on_a_fixed_batch(experiment, tmp_path, tiny_overrides):
    # Short clips keep it fast; the extrapolating one still feeds back from its 4th frame.
    short = ["data.length=6", *(["model.extrap_start_time=3"] if "extrap" in experiment else [])]
    cfg = compose_train(
        [f"experiment={experiment}", *tiny_overrides, *SMALL_PREDNET, *short], tmp_path
    )
    losses = steps_on_one_batch(cfg, "train/loss", steps=40)
    # One fixed batch, no noise: past PredNet's early plateau the fall is about 20%.
    assert mean(losses[-3:]) < 0.9 * mean(losses[:3]), losses


@pytest.mark.parametrize("experiment", GAN_EXPERIMENTS)
def test_gan_discriminator_learns_to_tell_a_frozen_generator(experiment, tmp_path, tiny_overrides):
    cfg = compose_train([f"experiment={experiment}", *tiny_overrides, *SMALL_GAN], tmp_path)
    losses = steps_on_one_batch(cfg, "train/loss_d", steps=20, freeze="generator")
    assert mean(losses[-3:]) < 0.8 * mean(losses[:3]), losses


def test_checkpoint_rebuilds_safely_and_logs_rollouts(kitti_checkpoint):
    ckpt = torch.load(kitti_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["vidgen"]["model"]["net"]["stack_sizes"] == [3, 48, 96, 192]
    task = hydra.utils.instantiate(ckpt["vidgen"]["model"])
    task.load_state_dict(ckpt["state_dict"])
    run_dir = kitti_checkpoint.parents[1]
    assert (run_dir / "checkpoints" / "config.yaml").is_file()
    assert (run_dir / "csv" / "metrics.csv").is_file()
    assert list((run_dir / "csv" / "rollouts").glob("epoch_000.png"))
    rows = (run_dir / "metrics_per_step.csv").read_text().splitlines()[1:]
    assert {row.split(",")[2] for row in rows} == {*METRIC_NAMES, *FRAME_SUM_NAMES}


def test_resume_from_last_continues_the_global_step(tmp_path, tiny_overrides):
    base = ["experiment=demo", *tiny_overrides, "test=false"]
    train(compose_train([*base, "trainer.max_epochs=1"], tmp_path / "first"))
    first = torch.load(tmp_path / "first/checkpoints/last.ckpt", weights_only=True)
    assert first["global_step"] == 2
    resumed = [*base, "trainer.max_epochs=2", "ckpt_path=last", f"paths.log_dir={tmp_path}"]
    os.rename(tmp_path / "first", tmp_path / "demo")  # where ckpt_path=last looks: log_dir/task
    train(compose_train(resumed, tmp_path / "second"))
    second = torch.load(tmp_path / "second/checkpoints/last.ckpt", weights_only=True)
    assert second["global_step"] == 4 and second["epoch"] == 1


def test_user_mistakes_are_one_line(tmp_path, tiny_dataset):
    with pytest.raises(VidgenError, match="neither a data config nor a dataset folder"):
        data_folder_overrides(["data=nowhere/at_all"])
    assert data_folder_overrides([f"data={tiny_dataset}", "seed=1"]) == [
        "data=folder",
        f"data.root={tiny_dataset}",
        "seed=1",
    ]
    # Training on a folder gets the own-video defaults unless an experiment or model is named.
    own = data_folder_overrides([f"data={tiny_dataset}"], training=True)
    assert own[-1] == "experiment=prednet_own"
    named = data_folder_overrides([f"data={tiny_dataset}", "model=cdna"], training=True)
    assert not any(arg.startswith("experiment=") for arg in named)
    cfg = compose_train(["experiment=demo", "ckpt_path=last"], tmp_path)
    with pytest.raises(VidgenError, match="found no last.ckpt"):
        train(cfg)
    cfg = compose_train(["experiment=demo", f"data.root={tmp_path}/missing", "~data.generate"],
                        tmp_path)  # fmt: skip
    with pytest.raises(VidgenError, match="does not exist"):
        train(cfg)


def test_command_line_prints_result_and_errors(tmp_path, tiny_dataset):
    env = {**os.environ, "VIDGEN_ROOT": str(tmp_path)}
    cmd = [sys.executable, "-m", "vidgen.cli.train"]
    run = subprocess.run(
        [*cmd, f"data={tiny_dataset}", "debug=fdr", "model.net.stack_sizes=[3,8,16,32]",
         "model.net.r_stack_sizes=[3,8,16,32]", "trainer.enable_progress_bar=false"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "MSE ratio to copy-last" in run.stdout
    bad = subprocess.run([*cmd, "data=no/such/folder"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "neither a data config nor a dataset folder" in bad.stderr


@pytest.mark.slow
def test_real_ddp_launcher(tmp_path, tiny_dataset):
    """Plain `ddp` re-launches the command for each rank: run it as a user would."""
    env = {**os.environ, "VIDGEN_ROOT": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "vidgen.cli.train", f"data={tiny_dataset}", "debug=fdr",
         "trainer=ddp_sim", "trainer.strategy=ddp", "model.net.stack_sizes=[3,8,16,32]",
         "model.net.r_stack_sizes=[3,8,16,32]"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MSE ratio to copy-last" in run.stdout


def test_slurm_launcher_leaves_requeueing_to_lightning(tmp_path):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["experiment=prednet_kitti", "trainer=ddp", "hydra/launcher=slurm"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.max_num_timeout == 0 and launcher.additional_parameters.signal == "SIGUSR1@90"
    assert launcher.tasks_per_node == launcher.gpus_per_node == cfg.trainer.devices


@pytest.mark.parametrize(
    "data",
    sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml") if "generate:" in p.read_text()),
)
def test_every_generating_data_config_renders_its_world(data, tmp_path):
    """The composed ``generate`` partial (options arrive as Hydra containers) renders a tiny
    dataset whose recorded world config is the configured one."""
    cfg = compose_train([f"data={data}"], tmp_path)
    generate = hydra.utils.instantiate(cfg.data.generate)
    generate(out=tmp_path / "data", episodes=3, frames=2, size=16)
    world = summarize(tmp_path / "data" / "train.h5")["world"]
    assert world["name"] == cfg.data.generate.world
    for option, value in cfg.data.generate.get("options", {}).items():
        configured = list(value) if isinstance(value, ListConfig) else value
        assert world["config"][option] == configured
