"""User-facing errors: one clear sentence saying which file, what is wrong and what to do."""


class InpaintError(Exception):
    """An error caused by the user's input; its message is shown as is, without a traceback."""


def described(exc: BaseException) -> str:
    """An unexpected error in a few words for a sentence: its type and the first line of its message."""
    first = (str(exc).strip().splitlines() or [""])[0].rstrip(".")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
