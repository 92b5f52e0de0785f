"""The shape of every ``key=value`` command: compose a Hydra config (``data=<folder>``
allowed), run, and turn a user mistake into one line and exit code 2.

A mistake is a ``VidgenError``, an unset mandatory value, or an override Hydra cannot
compose (a typo in a key, a config name that does not exist, broken syntax). Anything else
is a bug and keeps its traceback. The checks every command shares on its output and on a
trained model meeting data live here too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import hydra
from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
    SearchPathException,
)
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue
from torch import nn

from vidgen.cli.errors import fail
from vidgen.cli.train import CONFIG_DIR, data_folder_overrides
from vidgen.errors import VidgenError
from vidgen.eval.compare import check_fits

COMPOSITION_ERRORS = (ConfigCompositionException, OverrideParseException, SearchPathException)


def composition_message(err: Exception) -> str:
    """Hydra's several-line report of an override it cannot compose, as one line."""
    if isinstance(err, OverrideParseException):
        return (
            f"cannot parse the override {err.override!r} ({err.message.splitlines()[0]}); "
            "see https://hydra.cc/docs/advanced/override_grammar/basic/."
        )
    if isinstance(err, MissingConfigException) and err.options:
        return f"{str(err).splitlines()[0]}; choose one of {', '.join(err.options)}."
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def hydra_command(config_name: str, run: Callable[[DictConfig], object]) -> Callable[[], None]:
    """A console-script ``main`` that runs ``run(cfg)`` on ``configs/<config_name>.yaml``."""

    def task(cfg: DictConfig) -> object:
        try:
            return run(cfg)
        except (VidgenError, MissingMandatoryValue) as err:
            fail(err)

    # Hydra names the job, and its log file (train.log), after the task's module.
    task.__module__ = f"vidgen.cli.{config_name}"
    hydra_main = hydra.main(
        version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name
    )(task)

    def main() -> None:
        # Hydra prints a failed composition itself and exits 1, unless asked to raise.
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            sys.argv[1:] = data_folder_overrides(sys.argv[1:], training=config_name == "train")
            hydra_main()
        except VidgenError as err:
            fail(err)
        except COMPOSITION_ERRORS as err:
            fail(composition_message(err))

    return main


def check_output(path: Path, force: bool, setting: str = "out", folder: bool = False) -> None:
    """Before any work: refuse to replace ``path`` (a file, or with ``folder`` a non-empty
    folder) without ``force``, and fail now if its location cannot be written."""
    if folder and path.is_file():
        raise VidgenError(f"{setting}={path} is a file; give a folder.")
    if not folder and path.is_dir():
        raise VidgenError(f"{setting}={path} is a folder; give a file name.")
    taken = any(path.iterdir()) if folder and path.is_dir() else path.is_file()
    if taken and not force:
        what = "already holds files" if folder else "already exists"
        flag = "--force" if setting.startswith("--") else "force=true"
        raise VidgenError(
            f"{setting}={path} {what}; pass {flag} to replace it, or choose another {setting}."
        )
    location = path if folder else path.parent
    location = next(p for p in (location.absolute(), *location.absolute().parents) if p.exists())
    try:
        with tempfile.TemporaryFile(dir=location):
            pass
    except OSError as err:
        raise VidgenError(
            f"{setting}={path} cannot be written ({location}: {err.strerror or err}); "
            "choose a writable location."
        ) from None


def check_trained_fits(models: Mapping[str, nn.Module], frame_shape: tuple[int, int, int]) -> None:
    """``check_fits`` for trained models, whose frame size is fixed: the advice a model
    gives for its config (set a size) becomes advice about the data."""
    for name, model in models.items():
        try:
            check_fits({name: model}, frame_shape)
        except VidgenError as err:
            reason = str(err).split(";")[0].rstrip(".")
            raise VidgenError(
                f"{name}: {reason}; a trained model's sizes are fixed, so give it data "
                "that fits (e.g. made with vidgen-prep ... --size HxW)."
            ) from None
