"""Rebuild any predictor from a checkpoint alone, or name a baseline.

A vidgen checkpoint stores its composed model config under ``checkpoint["vidgen"]["model"]``
(see ``PredictorTask.on_save_checkpoint``); the file is read with ``weights_only=True``, so
a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import hydra
import torch
from torch import nn

from vidgen.errors import VidgenError
from vidgen.eval import BASELINES


def load(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """A ready predictor (``.rollout(frames, horizon, actions=None)``) in eval mode.

    ``checkpoint`` is a ``.ckpt`` written by vidgen-train or a baseline name
    (``copy_last``). Its parameters are frozen, so rollouts build no autograd graph; call
    ``requires_grad_(True)`` on the result to fine-tune it.
    """
    if str(checkpoint) in BASELINES:
        return BASELINES[str(checkpoint)]().to(device).eval()
    path = Path(checkpoint)
    if not path.is_file():
        choices = ", ".join(BASELINES)
        raise VidgenError(f"checkpoint {path} does not exist (nor is it a baseline: {choices}).")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError):
        raise VidgenError(f"{path} is not a vidgen checkpoint (not a PyTorch file).") from None
    config = saved.get("vidgen", {}).get("model") if isinstance(saved, dict) else None
    if not isinstance(config, dict) or "_target_" not in config or "state_dict" not in saved:
        raise VidgenError(
            f"{path} is not a vidgen checkpoint (it stores no model config); "
            "checkpoints written by vidgen-train do."
        )
    task = hydra.utils.instantiate(config)
    try:
        task.load_state_dict(saved["state_dict"])
    except RuntimeError:
        raise VidgenError(f"{path} holds weights that do not fit its own model config.") from None
    task.config = config
    return task.requires_grad_(False).to(device).eval()
