"""Registration test: how far a lesion, and each fill, moves a brain's registration to the template.

Lesions bias registration: a dark blob in white matter pulls a nonlinear registration towards the
template's dark structures. Each image of one brain (the original, the lesioned one, every fill) is
registered to the MNI152 2009a template the same way, with SimpleITK: a 12-parameter affine on Mattes
mutual information (moments initialisation, 4 and 2 mm shrink levels, a fixed sampling seed), then
symmetric-forces demons on the template's 2 mm grid after matching the moved image's histogram to the
template's. Each registration maps every template point y to a point x(y) of the subject. The bias of
an image is how far its map lies from the original image's, in mm: averaged over the template's brain,
and over the template points that the original maps into the lesions or within RING_MM of them.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..resources import MNI152_T1
from ..volume import itk_image

GRID_MM = 2.0               # the template grid the demons field lives on
AFFINE_SHRINK = (4, 2)      # multi-resolution levels of the affine, in template voxels (1 mm)
AFFINE_SMOOTH_MM = (2.0, 1.0)
SAMPLING = 0.1              # share of template voxels sampled by the mutual information metric
SEED = 1                    # its sampling seed: the same samples for every image
DEMONS_ITERATIONS = 50
DEMONS_SIGMA_VOXELS = 1.5
RING_MM = 4.0
DESCRIPTION = ("SimpleITK: 12-parameter affine on Mattes mutual information, then symmetric-forces demons on the "
               "template's 2 mm grid, the same for every image")
_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Template:
    """The fixed image: the template's brain at 1 mm (affine) and on the 2 mm grid (demons), with its brain."""

    fine: sitk.Image
    coarse: sitk.Image
    brain: np.ndarray       # bool, the coarse grid's voxels in the template's brain (ITK array order z, y, x)
    points: np.ndarray      # (n, 3) LPS positions of those voxels

    @classmethod
    def load(cls) -> "Template":
        image = nib.load(MNI152_T1)
        fine = itk_image(np.asarray(image.dataobj, dtype=np.float32), image.affine)
        factor = int(round(GRID_MM / fine.GetSpacing()[0]))
        coarse = sitk.BinShrink(fine, [factor] * 3)
        brain = sitk.GetArrayFromImage(coarse) > 0
        index = np.argwhere(brain)[:, ::-1].astype(np.float64)      # x, y, z voxel indices
        direction = np.array(coarse.GetDirection()).reshape(3, 3)
        points = np.array(coarse.GetOrigin()) + (index * np.array(coarse.GetSpacing())) @ direction.T
        return cls(fine=fine, coarse=coarse, brain=brain, points=points)


def fit_affine(template: Template, moving: sitk.Image) -> sitk.Transform:
    """The 12-parameter affine mapping template points to `moving`'s (`affine_onto` the template at 1 mm)."""
    return affine_onto(template.fine, moving)


def affine_onto(fixed: sitk.Image, moving: sitk.Image, fixed_mask: Optional[sitk.Image] = None) -> sitk.Transform:
    """The 12-parameter affine mapping `fixed` points to `moving`'s: Mattes mutual information on a fixed-seed sample
    of `fixed`'s voxels (those of `fixed_mask` only, when given), coarse to fine."""
    initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.AffineTransform(3),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING, SEED)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3, numberOfIterations=200,
                                                    gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(AFFINE_SHRINK))
    method.SetSmoothingSigmasPerLevel(list(AFFINE_SMOOTH_MM))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=True)
    method.Execute(fixed, moving)
    return initial


def subject_points(template: Template, image: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, float]:
    """(n, 3) LPS subject positions that the registration of `image` (skull-stripped, RAS affine) maps the
    template's brain points to, and the correlation of the affinely moved image with the template in its
    brain (how well the registration went). One ITK thread: the same image gives the same map, bit for bit."""
    with one_itk_thread():
        return _register(template, itk_image(np.asarray(image, dtype=np.float32), affine))


@contextmanager
def one_itk_thread() -> Iterator[None]:
    """ITK on one thread inside the block (a registration then gives the same result, bit for bit), as before after."""
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def _register(template: Template, moving: sitk.Image) -> tuple[np.ndarray, float]:
    linear = fit_affine(template, moving)
    moved = sitk.Resample(moving, template.coarse, linear, sitk.sitkLinear, 0.0)
    moved = sitk.HistogramMatching(moved, template.coarse, numberOfHistogramLevels=256, numberOfMatchPoints=15,
                                   thresholdAtMeanIntensity=True)
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(DEMONS_ITERATIONS)
    demons.SetStandardDeviations(DEMONS_SIGMA_VOXELS)
    field = sitk.GetArrayFromImage(demons.Execute(template.coarse, moved))   # z, y, x, 3 (LPS mm)
    warped = template.points + field[template.brain].astype(np.float64)
    fixed_values = sitk.GetArrayFromImage(template.coarse)[template.brain]
    correlation = float(np.corrcoef(fixed_values, sitk.GetArrayFromImage(moved)[template.brain])[0, 1])
    return _apply(linear, warped), correlation


def _apply(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """An affine ITK transform applied to many points at once."""
    affine = sitk.AffineTransform(transform)
    matrix = np.array(affine.GetMatrix()).reshape(3, 3)
    centre, shift = np.array(affine.GetCenter()), np.array(affine.GetTranslation())
    return (points - centre) @ matrix.T + centre + shift


def lesion_points(points: np.ndarray, lesion: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Which subject points (LPS) lie in the lesions or within RING_MM of them (RAS voxel mask, affine)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    near = ndimage.distance_transform_edt(~lesion, sampling=spacing) <= RING_MM
    voxel = np.rint(np.linalg.solve(affine, np.c_[points @ _LPS, np.ones(len(points))].T)[:3].T).astype(int)
    inside = np.all((voxel >= 0) & (voxel < lesion.shape), axis=1)
    found = np.zeros(len(points), dtype=bool)
    found[inside] = near[tuple(voxel[inside].T)]
    return found


def bias(points: np.ndarray, reference: np.ndarray, near: np.ndarray) -> dict[str, float]:
    """Mean distance (mm) between two maps of the template's brain: over the brain and near the lesions."""
    distance = np.linalg.norm(points - reference, axis=1)
    return {"brain_mm": float(distance.mean()),
            "lesion_mm": float(distance[near].mean()) if near.any() else float("nan")}
