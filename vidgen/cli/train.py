"""``vidgen-train``: compose a Hydra config, fit, test the best checkpoint, print the result.

vidgen-train                                  # demo: small PredNet on bouncing balls
vidgen-train experiment=prednet_kitti trainer=ddp trainer.devices=8
vidgen-train data=data/my_clips               # any folder made by vidgen-prep
vidgen-train experiment=prednet_kitti ckpt_path=last   # resume the newest run
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue
from rich.console import Console

from vidgen.errors import VidgenError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def data_folder_overrides(argv: list[str]) -> list[str]:
    """Rewrite ``data=<folder>`` into ``data=folder data.root=<folder>``; config names pass."""
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "data" and not (CONFIG_DIR / "data" / f"{value}.yaml").exists():
            if not Path(value).is_dir():
                raise VidgenError(f"data={value} is neither a data config nor a dataset folder.")
            out += ["data=folder", f"data.root={Path(value).resolve()}"]
        else:
            out.append(arg)
    return out


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``, with ``last`` meaning the newest last.ckpt among this task's runs."""
    if cfg.ckpt_path != "last":
        if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
            raise VidgenError(f"checkpoint {cfg.ckpt_path} does not exist.")
        return cfg.ckpt_path
    runs = Path(cfg.paths.log_dir) / cfg.task_name
    found = sorted(runs.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise VidgenError(f"ckpt_path=last found no last.ckpt under {runs}.")
    return str(found[-1])


def load_weights(task: pl.LightningModule, path: str) -> None:
    """Fine-tuning start: copy a checkpoint's weights, not its optimizer or step."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        task.load_state_dict(state)
    except (OSError, KeyError, RuntimeError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise VidgenError(f"cannot take weights from {path}: {first_line}") from None


def instantiate_group(group: DictConfig | None) -> list:
    """Objects of a callbacks/logger group; entries without ``_target_`` (an experiment
    tuning a callback that another choice removed) are skipped."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if "_target_" in c]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and/or test as ``cfg`` says; returns the final logged metrics."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    task = hydra.utils.instantiate(cfg.model)
    task.config = OmegaConf.to_container(cfg.model, resolve=True)
    if cfg.init_weights:
        load_weights(task, cfg.init_weights)
    callbacks, loggers = (
        instantiate_group(cfg.get("callbacks")),
        instantiate_group(cfg.get("logger")),
    )
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False
    )
    output_dir = Path(cfg.paths.output_dir)
    (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "checkpoints" / "config.yaml", resolve=True)
    checkpoint = resolve_checkpoint(cfg)
    datamodule.prepare_data()
    task.check_frame_shape(datamodule.frame_shape)
    if cfg.train:
        trainer.fit(task, datamodule=datamodule, ckpt_path=checkpoint)
        best = trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path
        checkpoint = best or None
    if cfg.test:
        trainer.test(task, datamodule=datamodule, ckpt_path=checkpoint)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        write_per_step(task.per_step_results, output_dir / "metrics_per_step.csv")
        report(metrics, output_dir)
    return metrics


def write_per_step(results: dict, path: Path) -> None:
    """Long-format CSV: split, model, metric, step (1 = first predicted frame), value."""
    rows = [
        f"{stage},{who},{name},{step},{value:.8g}"
        for stage, by_model in results.items()
        for who, by_metric in by_model.items()
        for name, values in by_metric.items()
        for step, value in enumerate(values, start=1)
    ]
    path.write_text("\n".join(["split,model,metric,step,value", *rows]) + "\n")


def report(metrics: dict[str, float], output_dir: Path) -> None:
    """One line per metric: the model against copy-last-frame on the held-out split."""
    console = Console()
    stage = "test" if "test/mse" in metrics else "val"
    if f"{stage}/mse" in metrics:
        for name in ("mse", "psnr", "ssim"):
            ours, base = metrics[f"{stage}/{name}"], metrics[f"{stage}/copy_last_{name}"]
            console.print(f"{stage} {name:>4}: model {ours:.5g}   copy-last {base:.5g}")
        console.print(f"{stage} MSE ratio to copy-last: {metrics[f'{stage}/mse_ratio']:.3f}")
    console.print(f"run folder: {output_dir}")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except (VidgenError, MissingMandatoryValue) as err:
        message = str(err).splitlines()[0]
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    return metrics.get("val/loss")


def main() -> None:
    try:
        sys.argv[1:] = data_folder_overrides(sys.argv[1:])
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()
