"""The shipped refiners, one per grid: each scan is filled by the one whose grid is nearest its voxels."""

from __future__ import annotations

from pathlib import Path

import pytest

import core.refine3d as refine3d
from core.refine3d import Refiner3D, RefinerConfig, default_refiner, save_refiner, shipped_refiners


@pytest.fixture
def two_grids(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    coarse, fine = tmp_path / "refiner3d", tmp_path / "refiner3d_1mm"
    save_refiner(coarse, Refiner3D(RefinerConfig(width=2, spacing_mm=2.0)))
    save_refiner(fine, Refiner3D(RefinerConfig(width=2, spacing_mm=1.0)))
    monkeypatch.setattr(refine3d, "SHIPPED", coarse)
    monkeypatch.setattr(refine3d, "REFINERS", (coarse, fine))
    monkeypatch.setattr(refine3d, "_CACHE", {})
    return coarse, fine


@pytest.mark.parametrize("spacing, grid", [((0.87, 0.87, 1.0), "refiner3d_1mm"), ((1.0, 1.33, 1.33), "refiner3d_1mm"),
                                           ((1.0, 1.0, 3.0), "refiner3d_1mm"), ((1.5, 1.5, 1.5), "refiner3d"),
                                           ((2.0, 2.0, 2.0), "refiner3d"), (None, "refiner3d")])
def test_a_scan_gets_the_refiner_whose_grid_is_nearest_its_voxels(two_grids, spacing, grid) -> None:
    assert default_refiner(spacing).name == grid


def test_without_the_1mm_refiner_every_scan_gets_the_2mm_one(two_grids, monkeypatch) -> None:
    coarse, fine = two_grids
    monkeypatch.setattr(refine3d, "REFINERS", (coarse, fine.with_name("absent")))
    assert [r.name for r in shipped_refiners()] == ["refiner3d"]
    assert default_refiner((0.87, 0.87, 1.0)).name == "refiner3d"
