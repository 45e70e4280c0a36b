"""The fill methods, one module each, by name; adding a method is one module plus one line below, or, from
another package, an entry point (`plugins`).

`core.methods.base` holds the interface (`FillMethod`, `Parameter`, `Slab`, `Run`, `MethodFill`);
`core.fill.fill_volume` runs a method, the command line, the app's settings form and the sidecar
read what it declares.
"""

from __future__ import annotations

from typing import Any

from . import plugins
from .base import FillMethod, MethodFill, Parameter, Run, Slab
from .biharmonic3d import Biharmonic3D
from .poisson3d import Poisson3D
from .refine3d import Refine3D
from .slices2d import Slices2D

METHODS: dict[str, FillMethod] = {}


def register(method: FillMethod) -> FillMethod:
    """Add `method` under its name (a later method of the same name replaces the earlier one)."""
    METHODS[method.name] = method
    return method


register(Slices2D())
register(Poisson3D())
register(Refine3D())
register(Biharmonic3D())


def fills_slices(method: str) -> bool:
    """Whether `method` fills slices of a plane (its summary counts them), not whole lesions in 3D."""
    return "axis" in METHODS[method].reads


def parameters() -> dict[str, Parameter]:
    """Every registered method's parameters by name, in registry order (the first declaration of a name wins)."""
    found: dict[str, Parameter] = {}
    for method in METHODS.values():
        for parameter in method.parameters:
            found.setdefault(parameter.name, parameter)
    return found


PLUGINS = plugins.load(register, METHODS, parameters())   # the installed packages' methods, after the built-in


def users(name: str) -> list[str]:
    """The methods that read the setting `name` (`FillMethod.reads`: a parameter, `model`, `axis`, `seed`, ...)."""
    return [m.name for m in METHODS.values() if name in m.reads]


def used_settings(record: dict[str, Any]) -> dict[str, Any]:
    """The entries of a settings record (`FillSettings.to_dict`, or a sidecar's `parameters` of any version) that
    its method reads; all of them for a method that is not registered."""
    method = METHODS.get(record.get("method"))
    return dict(record) if method is None else {k: v for k, v in record.items() if k in method.reads}


__all__ = ["FillMethod", "METHODS", "MethodFill", "PLUGINS", "Parameter", "Run", "Slab", "parameters",
           "register", "used_settings", "users"]
