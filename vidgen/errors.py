"""The one exception type that means "the user asked for something we cannot do".

Command-line entry points print its message as a single line and exit non-zero; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib


class VidgenError(Exception):
    """A user-facing error whose message is one complete sentence."""


def spawned_user_error(err: BaseException) -> VidgenError | None:
    """The VidgenError that ended a spawned process (a ``ddp_spawn`` rank), rebuilt from the
    traceback text torch hands back to the parent; None when ``err`` is anything else."""
    from torch.multiprocessing import ProcessRaisedException

    if not isinstance(err, ProcessRaisedException):
        return None
    last = next((line for line in reversed(str(err).splitlines()) if line.strip()), "")
    name, separator, message = last.partition(": ")
    module, _, class_name = name.rpartition(".")
    if not separator or module.split(".")[0] != "vidgen":
        return None
    try:
        raised = getattr(importlib.import_module(module), class_name, None)
    except ImportError:  # not a module of this vidgen: leave the original error as it is
        return None
    is_user_error = isinstance(raised, type) and issubclass(raised, VidgenError)
    return VidgenError(message) if is_user_error else None
