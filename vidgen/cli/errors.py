"""User mistakes end a command with one line on stderr and exit code 2, never a traceback.

``fail`` is that line for every command: the argparse ones (vidgen-prep, vidgen-plan) through
``exit_on_user_error``, the Hydra ones through ``vidgen.cli.command.hydra_command``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from vidgen.errors import VidgenError

F = TypeVar("F", bound=Callable[..., object])


def fail(message: object) -> NoReturn:
    """``error: <first line of message>`` on stderr, then exit code 2."""
    first_line = next(iter(str(message).splitlines()), "")
    print(f"error: {first_line}", file=sys.stderr)
    sys.exit(2)


def exit_on_user_error(main: F) -> F:
    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return main(*args, **kwargs)
        except VidgenError as err:
            fail(err)
        except KeyboardInterrupt:
            print("interrupted; nothing partial was left behind.", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
