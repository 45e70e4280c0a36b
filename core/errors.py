"""User-facing errors: one clear sentence saying which file, what is wrong and what to do."""


class InpaintError(Exception):
    """An error caused by the user's input; its message is shown as is, without a traceback."""
