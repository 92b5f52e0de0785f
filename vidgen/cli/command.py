"""The shape of every ``key=value`` command that is not training: compose a Hydra config
(``data=<folder>`` allowed), run, and turn a user mistake into one line and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

import hydra
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from vidgen.cli.train import CONFIG_DIR, data_folder_overrides
from vidgen.errors import VidgenError


def fail(err: Exception) -> None:
    print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
    sys.exit(2)


def hydra_command(config_name: str, run: Callable[[DictConfig], object]) -> Callable[[], None]:
    """A console-script ``main`` that runs ``run(cfg)`` on ``configs/<config_name>.yaml``."""

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)
    def hydra_main(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except (VidgenError, MissingMandatoryValue) as err:
            fail(err)

    def main() -> None:
        try:
            sys.argv[1:] = data_folder_overrides(sys.argv[1:])
        except VidgenError as err:
            fail(err)
        hydra_main()

    return main
