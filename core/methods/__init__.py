"""The fill methods, one module each, by name; adding a method is one module plus one line below.

`core.methods.base` holds the interface (`FillMethod`, `Parameter`, `Slab`, `Run`, `MethodFill`);
`core.fill.fill_volume` runs a method, the command line, the app's settings form and the sidecar
read what it declares.
"""

from __future__ import annotations

from .base import FillMethod, MethodFill, Parameter, Run, Slab
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


def parameters() -> dict[str, Parameter]:
    """Every registered method's parameters by name, in registry order (the first declaration of a name wins)."""
    found: dict[str, Parameter] = {}
    for method in METHODS.values():
        for parameter in method.parameters:
            found.setdefault(parameter.name, parameter)
    return found


def users(name: str) -> list[str]:
    """The methods that read the parameter `name`."""
    return [m.name for m in METHODS.values() if any(p.name == name for p in m.parameters)]


__all__ = ["FillMethod", "METHODS", "MethodFill", "Parameter", "Run", "Slab", "parameters", "register", "users"]
