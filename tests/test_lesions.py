import numpy as np
import pytest

from core.bench.lesions import KINDS, estimate_tissue, placement_zones, simulate_lesions

CSF, GM, WM = 20.0, 60.0, 100.0


def synthetic_brain(seed: int = 0, shape=(44, 52, 44)):
    """Ellipsoid 'brain' at 2 mm: CSF rim, 3-voxel grey matter cortex, white matter, two CSF ventricles, noise."""
    grid = np.stack(np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij"))
    radii = np.array([19.0, 23.0, 19.0])
    r = np.sqrt(((grid / radii[:, None, None, None]) ** 2).sum(0))
    brain = r <= 1.0
    image = np.where(brain, WM, 0.0)
    image[brain & (r > 0.8)] = GM
    image[brain & (r > 0.93)] = CSF
    for side in (-4.0, 4.0):
        vent = ((grid[0] - side) / 2.5) ** 2 + (grid[1] / 9.0) ** 2 + (grid[2] / 3.5) ** 2 <= 1.0
        image[vent] = CSF
    rng = np.random.default_rng(seed)
    image = np.where(brain, image + rng.normal(0.0, 4.0, shape), 0.0).astype(np.float32)
    return image, brain, np.array([2.0, 2.0, 2.0])


def test_lesions_are_seeded_reproducible_and_change_only_lesion_voxels():
    image, brain, voxel = synthetic_brain()
    a = simulate_lesions(image, brain, voxel, count=6, seed=3)
    b = simulate_lesions(image, brain, voxel, count=6, seed=3)
    c = simulate_lesions(image, brain, voxel, count=6, seed=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.mask, c.mask)
    assert np.array_equal(a.image[~a.mask], image[~a.mask])
    assert a.mask.sum() == sum(les.voxels for les in a.lesions)
    assert [les.kind for les in a.lesions] == [KINDS[i % 3] for i in range(6)]
    assert np.array_equal(a.labels > 0, a.mask)


def test_lesions_lie_in_white_matter_inside_the_brain_and_are_t1_hypointense():
    image, brain, voxel = synthetic_brain()
    result = simulate_lesions(image, brain, voxel, count=6, seed=0)
    tissue = estimate_tissue(image, brain)
    assert tissue.means[0] < tissue.means[1] < tissue.means[2]
    assert np.all(brain[result.mask]) and np.all(tissue.wm[result.mask])
    for i, lesion in enumerate(result.lesions, start=1):
        values = result.image[result.labels == i]
        assert lesion.voxels >= 1 and 3.0 <= lesion.diameter_mm <= 20.0
        assert tissue.means[1] < lesion.mean < tissue.means[2]
        assert values.mean() < image[result.labels == i].mean()  # darker than the white matter it replaced
    lesion_mean = result.image[result.mask].mean()
    assert GM < lesion_mean < WM


def test_placement_zones_are_white_matter_near_ventricles_cortex_or_deep():
    image, brain, voxel = synthetic_brain()
    tissue = estimate_tissue(image, brain)
    zones = placement_zones(tissue, brain, voxel)
    assert set(zones) == set(KINDS)
    for zone in zones.values():
        assert zone.any() and np.all(tissue.wm[zone])
    assert not (zones["periventricular"] & zones["juxtacortical"]).any()
    assert not (zones["deep"] & zones["periventricular"]).any()


def test_no_room_is_an_error():
    image, brain, voxel = synthetic_brain()
    with pytest.raises(ValueError):
        simulate_lesions(image, brain, voxel, count=400, seed=0)
