"""User mistakes end a command with one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from vidgen.errors import VidgenError

F = TypeVar("F", bound=Callable[..., object])


def exit_on_user_error(main: F) -> F:
    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return main(*args, **kwargs)
        except VidgenError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted; nothing partial was left behind.", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
