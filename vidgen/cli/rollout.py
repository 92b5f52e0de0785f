"""``vidgen-rollout``: roll any checkpoint out on held-out clips and write an mp4.

vidgen-rollout ckpt=logs/demo/<run>/checkpoints/last.ckpt               # demo data
vidgen-rollout ckpt=runs/prednet.ckpt data=data/caltech out=rollout.mp4 context=10 horizon=20
vidgen-rollout ckpt=... random=true seed=3 clips=4 frames=true          # plus a PNG strip
vidgen-rollout ckpt=logs/vgan_bouncing/<run>/checkpoints/last.ckpt out=samples.mp4 clips=6

Each row is one clip: context | ground truth | prediction | error heat map. The horizon may
run past the clip; the truth and error columns are gray where there is no ground truth.
An unconditional generator's checkpoint gives ``clips`` samples (seeded by ``seed``) side by
side instead, with its foreground, background and mask below; it reads no data.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from rich.console import Console
from torchvision.utils import make_grid, save_image

from vidgen.cli.command import check_output, check_trained_fits, hydra_command
from vidgen.cli.train import check_partial_dataset
from vidgen.errors import VidgenError
from vidgen.eval.compare import pick_windows, rollouts
from vidgen.loading import load
from vidgen.tasks.base import VidgenTask
from vidgen.tasks.media import parts_video
from vidgen.viz.grid import rollout_grid, rollout_panels, video_grid
from vidgen.viz.video import write_mp4


def render_rollout(cfg: DictConfig) -> Path:
    """Write the rollout video (and with ``frames`` a PNG strip); returns the mp4 path."""
    out = Path(cfg.out)
    if out.suffix != ".mp4":
        raise VidgenError(f"out={out} must name an .mp4 file.")
    check_output(out, cfg.force)
    if cfg.frames:
        check_output(out.with_suffix(".png"), cfg.force)
    model = load(cfg.ckpt, cfg.device)
    if model.samples_unconditionally:
        return render_samples(model, cfg, out)
    datamodule = hydra.utils.instantiate(cfg.data)
    context, horizon = cfg.context, cfg.horizon
    check_partial_dataset(datamodule)
    windows = datamodule.eval_windows(cfg.split, context, horizon, horizon_past_data=True)
    check_trained_fits({str(cfg.ckpt): model}, datamodule.frame_shape)
    has_actions = "actions" in windows.keys
    if has_actions and windows.length < context + horizon:
        raise VidgenError(
            f"this dataset has actions for {windows.length} frames per clip, so the horizon "
            f"can be at most {windows.length - context} after {context} context frames."
        )
    seed = cfg.seed if cfg.random else None
    chosen = pick_windows(len(windows), cfg.clips, cfg.indices, seed)
    torch.manual_seed(cfg.seed)
    truth, predictions = [], []
    for start in range(0, len(chosen), cfg.batch_size):
        batch = windows.batch(chosen[start : start + cfg.batch_size])
        truth.append(batch["frames"])
        predictions.append(rollouts({"m": model}, batch, context, horizon, cfg.device)["m"].cpu())
    panels = rollout_panels(torch.cat(truth), torch.cat(predictions), context)
    write_mp4(video_grid(panels, context, cfg.upscale), out, cfg.fps or windows.fps)
    if cfg.frames:
        # The strip wants truth for every frame: gray where the clip has ended.
        gray_truth = panels[1].frames.nan_to_num(0.5)
        save_image(rollout_grid(gray_truth, panels[2].frames[:, context:]), out.with_suffix(".png"))
    Console().print(f"wrote {out} ({len(chosen)} clips, {context} context + {horizon} predicted)")
    return out


def render_samples(model: VidgenTask, cfg: DictConfig, out: Path) -> Path:
    """``clips`` samples and their separated parts as one mp4 (and with ``frames`` a strip
    of the videos, one row per sample)."""
    if cfg.clips is None or cfg.clips < 1:
        raise VidgenError(f"clips must be at least 1 sample, got {cfg.clips}.")
    parts = model.sample(cfg.clips, seed=cfg.seed)
    write_mp4(parts_video(parts), out, cfg.fps or 10.0, upscale=cfg.upscale or 2)
    if cfg.frames:
        videos = parts.video.cpu()
        save_image(make_grid(videos.flatten(0, 1), nrow=videos.shape[1]), out.with_suffix(".png"))
    Console().print(f"wrote {out} ({cfg.clips} samples of {parts.video.shape[1]} frames)")
    return out


main = hydra_command("rollout", render_rollout)

if __name__ == "__main__":
    main()
