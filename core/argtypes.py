"""Number types for the command lines (`inpaint`, `python -m core.training.refiner`): one-sentence refusals."""

from __future__ import annotations

import argparse
import math
from typing import Callable, Union


def whole(text: str) -> int:
    """A whole number."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def real(text: str) -> float:
    """A finite real number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def number_range(low: Union[int, float], high: Union[int, float], what: str = "") -> Callable[[str], Union[int, float]]:
    """An argparse type: a number from `low` to `high` (whole when both bounds are int); `what` names its kind."""
    integer = isinstance(low, int) and isinstance(high, int)
    read = whole if integer else real
    what = what or ("a whole number " if integer else "")
    shown = [str(v) if integer else f"{v:g}" for v in (low, high)]

    def parse(text: str) -> Union[int, float]:
        value = read(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what}from {shown[0]} to {shown[1]}, not {text}")
        return value
    return parse


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `low`."""
    def parse(text: str) -> int:
        value = whole(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {low}, not {text}")
        return value
    return parse


def positive(text: str) -> float:
    """A finite number above 0."""
    value = real(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text}")
    return value


def non_negative(text: str) -> float:
    """A finite number of at least 0."""
    value = real(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, not {text}")
    return value
