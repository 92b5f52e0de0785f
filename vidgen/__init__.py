"""vidgen: video prediction and generative video models on PyTorch Lightning, Hydra and HDF5."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__version__ = "0.1.0"


def load(checkpoint: str | os.PathLike, device: str = "cpu") -> nn.Module:
    """A trained predictor (a vidgen-train checkpoint or a vidgen-export folder) or a baseline,
    ready for ``.rollout``; see ``vidgen.loading.load``."""
    # Imported here so `import vidgen` stays light (no torch, no Hydra).
    from vidgen.loading import load as load_predictor

    return load_predictor(checkpoint, device)
