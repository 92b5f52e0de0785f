"""``vidgen-rollout``: roll any checkpoint out on held-out clips and write an mp4.

vidgen-rollout ckpt=logs/demo/<run>/checkpoints/last.ckpt               # demo data
vidgen-rollout ckpt=runs/prednet.ckpt data=data/caltech out=rollout.mp4 context=10 horizon=20
vidgen-rollout ckpt=... random=true seed=3 clips=4 frames=true          # plus a PNG strip

Each row is one clip: context | ground truth | prediction | error heat map. The horizon may
run past the clip; the truth and error columns are gray where there is no ground truth.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from rich.console import Console
from torch.utils.data import default_collate
from torchvision.utils import save_image

from vidgen.cli.command import hydra_command
from vidgen.data.dataset import to_model_batch
from vidgen.errors import VidgenError
from vidgen.eval.compare import check_fits, held_out_windows, pick_windows, rollouts
from vidgen.loading import load
from vidgen.viz.grid import rollout_grid, rollout_panels, video_grid
from vidgen.viz.video import write_mp4


def render_rollout(cfg: DictConfig) -> Path:
    """Write the rollout video (and with ``frames`` a PNG strip); returns the mp4 path."""
    out = Path(cfg.out)
    if out.suffix != ".mp4":
        raise VidgenError(f"out={out} must name an .mp4 file.")
    model = load(cfg.ckpt, cfg.device)
    datamodule = hydra.utils.instantiate(cfg.data)
    context, horizon = cfg.context, cfg.horizon
    windows = held_out_windows(datamodule, cfg.split, context, horizon, full_truth=False)
    check_fits({"model": model}, datamodule.frame_shape)
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
        items = [windows[i] for i in chosen[start : start + cfg.batch_size]]
        batch = to_model_batch(default_collate(items))
        truth.append(batch["frames"])
        predictions.append(rollouts({"m": model}, batch, context, horizon, cfg.device)["m"].cpu())
    panels = rollout_panels(torch.cat(truth), torch.cat(predictions), context)
    write_mp4(video_grid(panels, context, cfg.upscale), out, cfg.fps or windows.fps)
    if cfg.frames:
        # The strip wants truth for every frame: gray where the clip has ended.
        full_truth = panels[1].frames.nan_to_num(0.5)
        save_image(rollout_grid(full_truth, panels[2].frames[:, context:]), out.with_suffix(".png"))
    Console().print(f"wrote {out} ({len(chosen)} clips, {context} context + {horizon} predicted)")
    return out


main = hydra_command("rollout", render_rollout)

if __name__ == "__main__":
    main()
