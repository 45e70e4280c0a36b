"""How much a 3D refiner improves on its biharmonic base, per hole kind, on fresh training-brain patches.

Validation for choosing between refiner runs without touching the held-out brains: patches and holes
are drawn as in training (`core.training.refiner`) but from a seed training never uses, so the figure
measures fit to the training brains' anatomy, not generalisation (that is `inpaint bench`'s job).

    python scripts/refiner_validation.py runs/refiner3d runs/refiner3d_deform [--batches 8]   # 2 mm refiners
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from core.paths import SHARED_DATA
from core.refine3d import load_refiner
from core.training.refiner_patches import HOLE_KINDS, batch, load_brain

DATA = SHARED_DATA / "robex_subject"
SEED = 10_000_019   # training draws its batches from seeds (run seed, step): never this one


def hole_error_ratio(network: torch.nn.Module, brains, kind: str, batches: int) -> float:
    """Summed squared error in the holes of the refined fill over that of the biharmonic base."""
    rng = np.random.default_rng(SEED)
    refined = base_error = 0.0
    for _ in range(batches):
        base, hole, truth = batch(rng, brains, np.array([1.0]), 6, hole_kind=kind)
        with torch.no_grad():
            pred = network(base, hole)
        refined += float((((pred - truth) ** 2) * hole).sum())
        base_error += float((((base - truth) ** 2) * hole).sum())
    return refined / base_error


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("refiners", nargs="+", type=Path, help="refiner folders (model.safetensors + config.json)")
    p.add_argument("--batches", type=int, default=8, help="batches of 6 patches per hole kind")
    args = p.parse_args()
    torch.set_num_threads(1)
    brains = [load_brain(DATA / "t1_1p5mm.nii.gz", DATA / "brainmask_1p5mm.nii.gz", 2.0)]
    print("refiner: gain over the biharmonic base in the hole, dB (error ratio), on ROBEX training-brain patches")
    for folder in args.refiners:
        network = load_refiner(folder).network.eval()
        cells = []
        for kind in HOLE_KINDS:
            ratio = hole_error_ratio(network, brains, kind, args.batches)
            cells.append(f"{kind} {10 * np.log10(1 / ratio):+.2f} dB ({ratio:.3f})")
        print(f"{folder}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
