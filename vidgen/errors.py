"""The one exception type that means "the user asked for something we cannot do".

Command-line entry points print its message as a single line and exit non-zero; anything
else is a bug and keeps its traceback.
"""


class VidgenError(Exception):
    """A user-facing error whose message is one complete sentence."""
