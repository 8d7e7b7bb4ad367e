"""The one exception type users see: its message is a single line that says what to do."""

from collections.abc import Sequence


class BrushworkError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    The CLI prints ``brushwork: <message>`` and exits with status 2, so every message
    should name the offending thing and the fix in one line.
    """


def brief(names: Sequence[str], shown: int = 4) -> str:
    """Names for a one-line message: a few, then how many more (50 names stay one line)."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")
