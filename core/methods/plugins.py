"""Fill methods from other installed packages: entry points of the group `brain_inpaint.methods`.

A package declares its method in its own pyproject.toml and is found once it is installed:

    [project.entry-points."brain_inpaint.methods"]
    mean3d = "my_package.methods:Mean3D"     # a FillMethod subclass (or instance)

A plug-in that cannot be loaded - it fails to import, is not a FillMethod, would replace a built-in method or
another plug-in's, or declares a parameter the command line already uses - is left out with one sentence
(`inpaint` prints it as a note, the app in its status bar); the other methods work as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Callable

from ..errors import described
from .base import FillMethod, Parameter

GROUP = "brain_inpaint.methods"
# options of `inpaint fill` / `inpaint bids` and FillSettings fields that are not method parameters: a plug-in's
# parameter may take neither their names nor their options
RESERVED = frozenset({"analysis_level", "axis", "batch", "bids_dir", "brainmask", "device", "dilate", "extra", "force",
                      "help", "image", "jobs", "keep_dtype", "mask", "mask_entity", "masks", "method", "model",
                      "out_dir", "output", "participant_label", "preview_every", "quiet", "reference", "scheduler",
                      "seed", "session", "session_label", "threads", "threshold", "uncertainty", "version",
                      "command", "func", "o", "h"})


class Unfit(Exception):
    """A loaded plug-in that cannot be registered (the message says why)."""


@dataclass(frozen=True)
class Plugins:
    """What loading found: the plug-in methods by name with the package each came from, and the problems."""

    sources: dict[str, str]
    problems: list[str]


def load(register: Callable[[FillMethod], FillMethod], registered: dict[str, FillMethod],
         known: dict[str, Parameter]) -> Plugins:
    """Register every plug-in method that loads and fits beside the `registered` methods and their `known`
    parameters (by name); one sentence for each one left out."""
    sources: dict[str, str] = {}
    problems: list[str] = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        origin = _origin(point)
        try:
            method = _method(point)
            _check(method, registered, known)
        except Exception as exc:   # a broken plug-in must not break the program or the other methods
            problems.append(f"The fill method plug-in {point.name} ({origin}) is left out: "
                            f"{_reason(exc)}; update or uninstall {origin}.")
            continue
        register(method)
        known.update({p.name: p for p in method.parameters})
        sources[method.name] = origin
    return Plugins(sources=sources, problems=problems)


def _origin(point: EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else point.value


def _method(point: EntryPoint) -> FillMethod:
    loaded = point.load()
    method = loaded() if isinstance(loaded, type) and issubclass(loaded, FillMethod) else loaded
    if not isinstance(method, FillMethod):
        raise Unfit(f"{point.value} is not a FillMethod subclass or instance")
    return method


def _check(method: FillMethod, registered: dict[str, FillMethod], known: dict[str, Parameter]) -> None:
    if not isinstance(method.name, str) or not method.name.replace("-", "_").isidentifier():
        raise Unfit(f"its name {method.name!r} is not a word a command line can take")
    if method.name in registered:
        raise Unfit(f"a method named {method.name} exists already")
    for parameter in method.parameters:
        if not isinstance(parameter, Parameter):
            raise Unfit(f"its parameter {parameter!r} is not a Parameter")
        if not parameter.name.isidentifier() or parameter.name.startswith("_"):
            raise Unfit(f"its parameter name {parameter.name!r} is not a plain word")
        if type(parameter.default) not in (bool, int, float):
            raise Unfit(f"its parameter {parameter.name} has a default of {type(parameter.default).__name__}; "
                        "a parameter is a number or a switch")
        option = parameter.flag.removeprefix("--no-").removeprefix("--").replace("-", "_")
        for word in {parameter.name, option}:
            if word in RESERVED:
                raise Unfit(f"its parameter {parameter.name} would take the command line's option or setting {word}")
            if word in known and known[word] is not parameter:
                raise Unfit(f"its parameter {parameter.name} differs from another method's of that name")
        if any(other.flag == parameter.flag and other is not parameter for other in known.values()):
            raise Unfit(f"its parameter {parameter.name} would take another method's option {parameter.flag}")


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, Unfit) else described(exc)
