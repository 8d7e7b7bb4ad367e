"""The one exception type users see: its message is a single line that says what to do."""


class BrushworkError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    The CLI prints ``brushwork: <message>`` and exits with status 2, so every message
    should name the offending thing and the fix in one line.
    """
