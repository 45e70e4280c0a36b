"""User-facing errors: one clear sentence saying which file, what is wrong and what to do."""


EXIT_USER_ERROR = 2     # exit status of a command refused in one sentence (as argparse's own errors)
EXIT_INTERRUPTED = 130  # exit status after Ctrl+C (128 + SIGINT)


class InpaintError(Exception):
    """An error caused by the user's input; its message is shown as is, without a traceback."""


def described(exc: BaseException) -> str:
    """An unexpected error in a few words for a sentence: its type and the first line of its message."""
    first = (str(exc).strip().splitlines() or [""])[0].rstrip(".")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
