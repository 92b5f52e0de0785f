"""``vidgen-export``: a checkpoint's weights and model config, with no pickle and no code.

vidgen-export ckpt=logs/demo/<run>/checkpoints/last.ckpt out=models/demo
vidgen-export ckpt=... out=models/demo force=true      # replace an earlier export

Writes ``out/model.safetensors`` (the state_dict) and ``out/config.json`` (the model config,
checked as ``vidgen.load`` checks it, with the format and vidgen version). This is the format
to share models in: ``vidgen.load(out)`` and every command's ``ckpt=`` read it. The folder
appears whole or not at all: it is written beside ``out`` and renamed into place.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from vidgen.cli.command import check_output, hydra_command
from vidgen.errors import VidgenError
from vidgen.loading import CONFIG_FILE, WEIGHTS_FILE, read_saved, save_export

EXPORT_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE})


def check_destination(out: Path, force: bool) -> None:
    """``out`` is new, empty, or (with ``force``) an earlier export and nothing else, in a
    writable place."""
    held = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if held - EXPORT_FILES:
        raise VidgenError(
            f"out={out} holds files other than an export; choose a new or empty folder."
        )
    check_output(out, force, folder=True)


def replace_folder(staging: Path, out: Path) -> None:
    """Put ``staging`` at ``out``; an existing ``out`` is moved aside first, then deleted."""
    if not out.exists():
        staging.rename(out)
        return
    old = staging.with_name(f"{staging.name}.old")
    out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        old.rename(out)
        raise
    shutil.rmtree(old)


def export(cfg: DictConfig) -> Path:
    """Check, then write ``cfg.out`` from ``cfg.ckpt``; returns the folder."""
    out = Path(cfg.out)
    check_destination(out, cfg.force)
    saved = read_saved(cfg.ckpt)  # refuses a hostile or diverged checkpoint before any write
    target = out.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    staging.mkdir()
    try:
        save_export(saved, staging)
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    Console().print(f"wrote {out / WEIGHTS_FILE} and {out / CONFIG_FILE}")
    return out


main = hydra_command("export", export)

if __name__ == "__main__":
    main()
