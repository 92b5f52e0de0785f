"""``vidgen-train``: compose a Hydra config, fit, test the best checkpoint, print the result.

vidgen-train                                  # demo: small PredNet on bouncing balls
vidgen-train experiment=prednet_kitti trainer=ddp trainer.devices=4
vidgen-train data=data/my_clips               # any folder made by vidgen-prep
vidgen-train experiment=prednet_kitti ckpt_path=last   # resume the newest run
"""

from __future__ import annotations

import types
import typing
from contextlib import suppress
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from rich.console import Console

import vidgen.configs
from vidgen.data import VideoDataModule
from vidgen.errors import VidgenError, spawned_user_error
from vidgen.eval.metrics import write_per_step_csv
from vidgen.loading import read_saved

# configs/ of the repository, installed as the package vidgen.configs (editable or not)
CONFIG_DIR = Path(vidgen.configs.__file__).resolve().parent
FAILED = "FAILED"  # in a run folder: the run failed; the file holds the one-line reason


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """``configs/<name>.yaml`` with Hydra ``overrides``, composed as ``vidgen-<name>`` does
    (``data=<folder>`` aside), for code that runs a command without its command line."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def data_folder_overrides(argv: list[str], training: bool = False) -> list[str]:
    """Rewrite ``data=<folder>`` into ``data=folder data.root=<folder>``; config names pass.
    A training run on a folder with no ``experiment=`` or ``model=`` gets the own-video
    defaults (``experiment=prednet_own``) instead of the demo's."""
    out, folder = [], False
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "data" and not (CONFIG_DIR / "data" / f"{value}.yaml").exists():
            if not Path(value).is_dir():
                raise VidgenError(f"data={value} is neither a data config nor a dataset folder.")
            out += ["data=folder", f"data.root={Path(value).resolve()}"]
            folder = True
        else:
            out.append(arg)
    chosen = {arg.partition("=")[0].lstrip("+~") for arg in argv}
    if training and folder and not chosen & {"experiment", "model"}:
        out.append("experiment=prednet_own")
    return out


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``, with ``last`` meaning the newest last.ckpt among this task's runs that
    did not fail (a failed run folder holds a ``FAILED`` file)."""
    if cfg.ckpt_path != "last":
        if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
            raise VidgenError(f"ckpt_path={cfg.ckpt_path} is not a checkpoint file.")
        return cfg.ckpt_path
    runs = Path(cfg.paths.log_dir) / cfg.task_name
    found = [
        p for p in runs.glob("**/checkpoints/last.ckpt") if not (p.parents[1] / FAILED).exists()
    ]
    if not found:
        raise VidgenError(
            f"ckpt_path=last found no last.ckpt of a run that did not fail under {runs}; "
            "give the checkpoint's path instead."
        )
    return str(max(found, key=lambda p: p.stat().st_mtime))


def load_weights(task: pl.LightningModule, path: str, setting: str = "init_weights") -> None:
    """Copy a checkpoint's (or an export's) weights into ``task``, not its optimizer or step;
    the file is checked as ``vidgen.load`` checks it. Before a resume (``ckpt_path``) this
    proves, in one line, that the file is a vidgen checkpoint of this model."""
    saved = read_saved(path)
    try:
        task.load_state_dict(saved.state_dict)
    except RuntimeError:
        family = saved.config["_target_"].rsplit(".", 1)[-1]
        raise VidgenError(
            f"{setting}={path} holds a {family} whose weights do not fit this "
            f"{type(task).__name__}; give a checkpoint of the same model and sizes."
        ) from None


def check_trainer_settings(settings: DictConfig) -> None:
    """Refuse a trainer setting of the wrong type (``trainer.max_epochs=abc``) in one line,
    before Lightning trips over it deep inside its loop."""
    hints = typing.get_type_hints(hydra.utils.get_class(settings._target_).__init__)
    for key, value in OmegaConf.to_container(settings, resolve=True).items():
        if key in hints and not fits_hint(value, hints[key]):
            raise VidgenError(f"trainer.{key}={value!r} is not valid; set {describe(hints[key])}.")


def fits_hint(value: object, hint: object) -> bool:
    """Whether a config value fits a type hint; a config node Hydra instantiates fits any."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(value, dict) and "_target_" in value:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(fits_hint(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    hint_type = origin or hint
    return not isinstance(hint_type, type) or isinstance(value, hint_type)


def describe(hint: object) -> str:
    """A type hint in words: ``int | None`` -> ``an integer or null``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if float in args:  # "a number" covers the integers
            args = tuple(arg for arg in args if arg is not int)
        return " or ".join(describe(arg) for arg in args)
    if typing.get_origin(hint) is typing.Literal:
        return " or ".join(map(repr, args))
    words = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if hint in words:
        return words[hint]
    return "null" if hint is type(None) else f"a {getattr(hint, '__name__', hint)}"


def check_optimizer(task: pl.LightningModule) -> None:
    """Build the optimizer once on a stand-in parameter, so a setting torch refuses
    (``model.optimizer.lr=-1``) is one line before training starts."""
    factory = getattr(task, "optimizer_factory", None)
    if factory is None:
        return
    try:
        factory(params=[torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as err:
        name = getattr(getattr(factory, "func", factory), "__name__", "the optimizer")
        raise VidgenError(
            f"model.optimizer is refused by {name} ({str(err).splitlines()[0]}); "
            "correct that setting under model.optimizer."
        ) from None


def check_partial_dataset(datamodule: VideoDataModule) -> None:
    """A folder the data config would render, which holds some splits but no train split,
    was left half made: say what to do about it here, not what vidgen-prep would take."""
    root, train_file = datamodule.root, datamodule.split_path("train")
    if datamodule.generate is not None and not train_file.exists() and any(root.glob("*.h5")):
        raise VidgenError(
            f"{root} holds an incomplete dataset (no {train_file.name}); remove that folder to "
            f"render it again, or rebuild it with vidgen-prep synthetic --out {root} --force."
        )


@rank_zero_only
def mark_failed(output_dir: Path, err: Exception) -> None:
    """Leave the reason in ``FAILED``, so the folder does not pass for a finished run."""
    reason = str(err).splitlines()[0] if str(err) else ""
    if not isinstance(err, VidgenError):
        reason = f"{type(err).__name__}: {reason}"
    with suppress(OSError):  # an unwritable folder must not hide the failure itself
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / FAILED).write_text(reason + "\n")


def instantiate_group(group: DictConfig | None, name: str) -> list:
    """Objects of a callbacks/logger group; entries without ``_target_`` (an experiment
    tuning a callback that another choice removed) are skipped. An optional package that is
    not installed (TensorBoard, an extra) is one line."""
    try:
        return [hydra.utils.instantiate(c) for c in (group or {}).values() if "_target_" in c]
    except InstantiationException as err:
        if not isinstance(err.__cause__, ModuleNotFoundError | ImportError):
            raise
        missing = str(err.__cause__).splitlines()[0]
        raise VidgenError(
            f"the {name} chosen needs a package that is not installed ({missing}); install "
            "it, e.g. pip install 'vidgen[tensorboard]' for logger=tensorboard."
        ) from None


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and/or test as ``cfg`` says; returns the final logged metrics. A run that fails
    leaves ``FAILED`` (the reason) in its folder."""
    output_dir = Path(cfg.paths.output_dir)
    (output_dir / FAILED).unlink(missing_ok=True)  # a requeued SLURM job reuses its folder
    try:
        return fit_and_test(cfg, output_dir)
    except Exception as err:  # marked, then raised as it was; an interrupt is no failure
        user_error = spawned_user_error(err)  # a ddp_spawn rank's mistake is one line too
        mark_failed(output_dir, user_error or err)
        if user_error is not None:
            raise user_error from None
        raise


def fit_and_test(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    """``train`` itself; settings that cannot work are refused before anything is built."""
    check_trainer_settings(cfg.trainer)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    task = hydra.utils.instantiate(cfg.model)
    task.config = OmegaConf.to_container(cfg.model, resolve=True)
    check_optimizer(task)
    if cfg.init_weights:
        load_weights(task, cfg.init_weights)
    checkpoint = resolve_checkpoint(cfg)
    if checkpoint:
        load_weights(task, checkpoint, "ckpt_path")
    check_partial_dataset(datamodule)
    callbacks, loggers = (
        instantiate_group(cfg.get("callbacks"), "callbacks"),
        instantiate_group(cfg.get("logger"), "logger"),
    )
    try:
        trainer: pl.Trainer = hydra.utils.instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False
        )
    except InstantiationException as err:
        cause = str(err.__cause__ or err).splitlines()[0]
        raise VidgenError(f"the trainer settings are not valid ({cause}); correct them.") from None
    (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "checkpoints" / "config.yaml", resolve=True)
    datamodule.check_settings(trainer.world_size)  # here: spawned ranks fail with tracebacks
    datamodule.prepare_data()
    task.check_frame_shape(datamodule.frame_shape)
    if cfg.train:
        # weights_only: a resumed checkpoint is unpickled as plain data only, never code
        trainer.fit(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
        best = trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path
        checkpoint = best or None
    if cfg.test:
        trainer.test(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        write_per_step_csv(task.per_step_results, output_dir / "metrics_per_step.csv", "split")
        report(metrics, output_dir)
    return metrics


def report(metrics: dict[str, float], output_dir: Path) -> None:
    """One line per metric: the model against copy-last-frame on the held-out split."""
    console = Console()
    stage = "test" if "test/mse" in metrics else "val"
    if f"{stage}/mse" in metrics:
        for name in ("mse", "mae", "psnr", "ssim"):
            ours, base = metrics[f"{stage}/{name}"], metrics[f"{stage}/copy_last_{name}"]
            console.print(f"{stage} {name:>4}: model {ours:.5g}   copy-last {base:.5g}")
        console.print(f"{stage} MSE ratio to copy-last: {metrics[f'{stage}/mse_ratio']:.3f}")
    console.print(f"run folder: {output_dir}")


def main() -> None:
    # vidgen.cli.command reads CONFIG_DIR from this module, so it is imported once this is.
    from vidgen.cli.command import hydra_command

    hydra_command("train", lambda cfg: train(cfg).get("val/loss"))()


if __name__ == "__main__":
    main()
