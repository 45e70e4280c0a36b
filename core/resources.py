"""Where the shipped files are (models, refiner, MNI152 template, demo brain).

A wheel installs the repository's `resources/` folder as the `inpaint_resources` package; an editable
install made before that package existed, or a plain checkout on `sys.path`, uses `resources/` beside `core/`.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

PACKAGE = "inpaint_resources"
CHECKOUT = Path(__file__).resolve().parents[1] / "resources"


def _root() -> Path:
    """The installed package's folder, else the checkout's `resources/`."""
    spec = find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return CHECKOUT


ROOT = _root()
MODELS = ROOT / "models"                                  # one folder per slice model, DEFAULT names the default
REFINER = ROOT / "refiner3d_1mm"                          # the 3D refiner of the default method (1 mm grid)
REFINERS = (REFINER,)                                     # one per grid: core.refine3d.default_refiner chooses
MNI152_T1 = ROOT / "mni152" / "t1.nii.gz"                 # default training brain; gm/wm maps beside it
DEMO_BRAIN = ROOT / "demo" / "sub-demo_T1w_brain.nii.gz"  # what the app opens first
