"""Where a scan's lateral ventricles may lie: the MNI152 template's, moved onto the scan by an affine registration.

The bench's `peri10` holes go beside the lateral ventricles, where most MS lesions lie. A scan's own
deep CSF also holds the third ventricle and the cisterns around the midbrain, which a box in the
brain's extent cannot tell apart from the ventricles' floor. The template's lateral ventricles are
its deep CSF (grey and white matter probabilities together under a half) in the part of MNI space
they occupy, away from the midline (the third ventricle and the fissure); widened by MARGIN_MM off
the midline for the registration's error, they are resampled onto the scan through the affine that
`core.bench.registration` fits (Mattes mutual information, the same seed each time).
"""

from __future__ import annotations

from functools import lru_cache

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..resources import MNI152_T1
from ..volume import itk_image
from .registration import Template, fit_affine, one_itk_thread

LATERAL_BOX_MM = ((3.0, 36.0), (-50.0, 35.0), (-5.0, 35.0))  # |x|, y, z in MNI space: the two lateral ventricles
CSF_BELOW = 0.5          # grey + white matter probability under which a template voxel is CSF
DEPTH_MM = 15.0          # deeper than this below the template brain's surface: no sulcus
MARGIN_MM = 4.0          # widening for the affine's error, never towards the midline


@lru_cache(maxsize=1)
def template_region() -> tuple[np.ndarray, np.ndarray]:
    """The template's lateral-ventricle region (bool, RAS voxel order) and the template's affine."""
    t1 = nib.load(MNI152_T1)
    image = np.asarray(t1.dataobj, dtype=np.float32)
    tissue = sum(np.asarray(nib.load(MNI152_T1.with_name(name)).dataobj, dtype=np.float32)
                 for name in ("gm.nii.gz", "wm.nii.gz")) / 255.0
    brain = image > 0
    csf = brain & (tissue < CSF_BELOW) & (ndimage.distance_transform_edt(brain) > DEPTH_MM)
    i, j, k = np.ogrid[:image.shape[0], :image.shape[1], :image.shape[2]]
    x, y, z = (row[0] * i + row[1] * j + row[2] * k + row[3] for row in t1.affine[:3])   # MNI mm
    (x_low, x_high), (y_low, y_high), (z_low, z_high) = LATERAL_BOX_MM
    lateral = np.abs(x) >= x_low
    inside = lateral & (np.abs(x) <= x_high) & (y >= y_low) & (y <= y_high) & (z >= z_low) & (z <= z_high)
    labels, _ = ndimage.label(csf & inside)
    sizes = np.bincount(labels.ravel())[1:]
    ventricles = np.isin(labels, 1 + np.argsort(sizes)[-2:])          # the left and the right one
    near = ndimage.distance_transform_edt(~ventricles) <= MARGIN_MM    # the template's voxels are 1 mm
    return near & lateral, t1.affine


def lateral_ventricle_region(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Bool mask on the scan's grid (`image`: skull-stripped, RAS voxel order with RAS `affine`) where its lateral
    ventricles may lie; ValueError where the registration fails."""
    region, template_affine = template_region()
    try:
        with one_itk_thread():   # the same scan gives the same region, bit for bit
            scan = itk_image(np.asarray(image, dtype=np.float32), affine)
            to_scan = fit_affine(_template(), scan)          # template points -> scan points
            moved = sitk.Resample(itk_image(region.astype(np.uint8), template_affine), scan, to_scan.GetInverse(),
                                  sitk.sitkNearestNeighbor, 0)
    except RuntimeError:   # ITK: e.g. every sample of the template maps outside a tiny or empty image
        raise ValueError("its registration to the MNI152 template (to find the lateral ventricles) failed") from None
    return sitk.GetArrayFromImage(moved).transpose() > 0


@lru_cache(maxsize=1)
def _template() -> Template:
    return Template.load()
