"""Package layout (metadata is in pyproject.toml): `resources/` is installed as the `inpaint_resources` package."""

from setuptools import find_namespace_packages, find_packages, setup

RESOURCE_DIRS = [f"inpaint_resources.{name}" for name in find_namespace_packages(where="resources")]

setup(
    packages=find_packages(include=["core*", "inpaint_gui*"]) + ["inpaint_resources", *RESOURCE_DIRS],
    package_dir={"inpaint_resources": "resources"},
    package_data={"inpaint_resources": ["**/*"]},
    # the refiner's optimizer state only resumes training; the installed tool never reads it
    exclude_package_data={"inpaint_resources": ["refiner3d*/optimizer.safetensors"]},
)
