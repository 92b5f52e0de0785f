"""The training stack: config composition, fast_dev_run of every experiment, simulated
DDP, resume, the test-only path and the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import compose_train, experiments_of
from vidgen.cli.train import CONFIG_DIR, data_folder_overrides, train
from vidgen.errors import VidgenError

EXPERIMENTS = experiments_of("prednet")


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
    assert cfg.trainer.max_epochs == 150 and list(cfg.model.scheduler.milestones) == [75]
    assert cfg.model.optimizer.lr == 1e-3 and cfg.model.scheduler.gamma == 0.1


@pytest.fixture(scope="module")
def kitti_checkpoint(tmp_path_factory, tiny_dataset):
    """A real checkpoint from two training steps of the paper network."""
    out = tmp_path_factory.mktemp("run")
    overrides = [f"data.root={tiny_dataset}", "data.num_workers=0", "data.batch_size=2",
                 "data.samples_per_epoch=4", "data.val_windows=2", "trainer.max_epochs=1",
                 "trainer.enable_progress_bar=false", "test=false",
                 "callbacks.rollout_strip.every_n_epochs=1"]  # fmt: skip
    train(compose_train(["experiment=prednet_kitti", *overrides], out))
    return out / "checkpoints" / "last.ckpt"


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


def test_checkpoint_rebuilds_safely_and_logs_rollouts(kitti_checkpoint):
    ckpt = torch.load(kitti_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["vidgen"]["model"]["net"]["stack_sizes"] == [3, 48, 96, 192]
    task = hydra.utils.instantiate(ckpt["vidgen"]["model"])
    task.load_state_dict(ckpt["state_dict"])
    run_dir = kitti_checkpoint.parents[1]
    assert (run_dir / "checkpoints" / "config.yaml").is_file()
    assert (run_dir / "csv" / "metrics.csv").is_file()
    assert list((run_dir / "csv" / "rollouts").glob("epoch_000.png"))


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


def test_ddp_simulated_on_cpu(tmp_path, tiny_overrides):
    cfg = compose_train(
        ["experiment=demo", *tiny_overrides, "trainer=ddp_sim", "trainer.devices=2",
         "trainer.max_epochs=1", "trainer.enable_progress_bar=false"],
        tmp_path,
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["test/mse"] > 0


def test_user_mistakes_are_one_line(tmp_path, tiny_dataset):
    with pytest.raises(VidgenError, match="neither a data config nor a dataset folder"):
        data_folder_overrides(["data=nowhere/at_all"])
    assert data_folder_overrides([f"data={tiny_dataset}", "seed=1"]) == [
        "data=folder",
        f"data.root={tiny_dataset}",
        "seed=1",
    ]
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
