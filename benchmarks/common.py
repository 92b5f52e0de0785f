"""What the benchmarks that train share: a wall-clock budget in Lightning's format and a
Trainer that only trains. Their configs come from ``vidgen.cli.train.compose_config``,
composed as ``vidgen-train`` composes them.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


def max_time(minutes: float) -> str:
    """``trainer.max_time`` for ``minutes``, as Lightning's DD:HH:MM:SS."""
    seconds = round(minutes * 60)
    return f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def training_only_trainer(**options: Any) -> pl.Trainer:
    """A Trainer for a benchmark's own ``fit``: training batches only (no validation), and
    nothing logged, saved or printed; ``options`` (device, length, callbacks) as pl.Trainer."""
    return pl.Trainer(
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )
