"""The model card a refiner training run writes beside its weights: data, settings, history."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import write_atomically
from ..refine3d import Refiner3D
from .cohort import licences as source_licences
from .cohort import subjects_text
from .refiner_patches import (BLUR_MAX_SIGMA, CONTRAST_RANGE, DEFORM_MAX_DEGREES, DEFORM_SCALE, DEFORM_WARP_VOXELS,
                              GAMMA_LOG_SD, HOLE_KINDS, LESION_DARKENING, NOISE_SD, PATCH, REMAP_KNOTS, REMAP_SHIFT,
                              SLAB_VOXELS)


CARD = """# Model card: 3D refiner (`refine3d`, the default fill)

3D U-Net (three levels, {width}/{w2}/{w4} channels, {params:,} parameters) on a {spacing:g} mm grid. Input: the
biharmonic 3D fill of a lesion's neighbourhood and the hole mask{inputs}; output: a correction added inside the hole{gate}.
Its last layer starts at zero, so before training it is exactly the biharmonic fill.

## Intended use
Filling lesion masks in brain-extracted adult T1-weighted MRI with `inpaint fill` (default method). Research
use only; not a medical device. Filled voxels are synthetic.

## Training data
Never the held-out brains. Patches of {patch}^3 voxels at {spacing:g} mm from {data}.{licences}{validation}
Augmentation: random axis order and flips, gamma (log SD {gamma:g}), contrast x{contrast}, Gaussian noise in the brain
(SD 0-{noise_sd:g} of the intensity range, drawn per patch).{deform}{remap}{blur}{slabs}{mirror}
Holes: irregular blobs ({blob:.0%}), boxes ({box:.0%}) and thin slabs 2-8 mm thick ({slab:.0%}) inside the brain, sized in mm on every grid.{centre}

## Training run
{command} {steps} steps of batch {batch}, Adam lr {lr} with cosine decay over the
planned steps, gradient norm clipped at 1, seed {seed}; {minutes:.0f} min on {hardware} (torch {torch}).
Objective: mean squared error inside the hole (model units [-1, 1]),
averaged {averaging}.{history}
The last two logged averages: MSE {mse:.5f} against {base:.5f} for the biharmonic fill alone
(`loss.csv` of the run: step, MSE, biharmonic MSE, seconds).

## Held-out quality
In `docs/results.md`: `inpaint bench` on brains it never saw (the held-out cohort at about 1 mm, the held-out
subject and Colin27 at 2 mm), against every classical fill.

## Limitations
{count} training brains and a few CPU-hours of training: the correction is small, and the fill stays close to
the biharmonic fill, smooth inside large holes (no texture).
"""

def _data_text(meta: dict) -> dict[str, str]:
    """The card's training-data fields: scans with their weights, their sources' licences, the validation scans."""
    weights = sorted(set(round(w, 4) for w in meta["weights"]))
    data = subjects_text(meta["data"]) + (f", each scan with sampling weight {weights[0]:.4f}" if len(weights) == 1 else
                                      f", sampling weights {', '.join(f'{x:.2f}' for x in meta['weights'])}")
    licences = "".join(f"\n{text}" for text in source_licences(meta["data"]))
    kept = meta.get("validation") or []
    validation = (f"\nValidation scans, never drawn from and used for every choice: {subjects_text(kept)}." if kept else "")
    return {"data": data, "licences": licences, "validation": validation, "count": str(len(meta["data"]))}


AVERAGING = {"voxel": "over all hole voxels of a batch", "lesion": "per hole, then over the batch",
             "log": "per hole in decibels (10 log10 of its mean), then over the batch"}


def _stage(init: dict) -> str:
    """One earlier run as the card names it: path, checksum and its training settings."""
    before = init.get("training") or {}
    shares = f"{float(before['deform']):.0%} of patches deformed, " if before.get("deform") else ""
    shares += f"{float(before['remap']):.0%} with a random tissue contrast, " if before.get("remap") else ""
    shares += f"{float(before['blur']):.0%} smoothed, " if before.get("blur") else ""
    shares += f"{float(before['slabs']):.0%} in thick slices, " if before.get("slabs") else ""
    shares += f"noise SD 0-{float(before['noise_sd']):g}, " if "noise_sd" in before else ""
    return (f"`{init['path']}` (sha256 {init['sha256'][:12]}...: {before.get('steps', '?')} steps, "
            f"lr {before.get('lr', '?')}, error averaged {AVERAGING.get(before.get('loss', 'voxel'), '?')}, "
            f"{shares}{float(before.get('wall_time_s', 0.0)) / 60:.0f} min)")


def _history(meta: dict) -> str:
    """The card's sentence on the runs this one started from (each from the one before), if any."""
    stages, init = [], meta.get("init")
    while init:
        stages.append(_stage(init))
        init = (init.get("training") or {}).get("init")
    if not stages:
        return ""
    return ("\nIt started from the weights of " + ", which started from ".join(stages)
            + ", each time with a fresh optimiser and schedule.")


def write_card(out: Path, network: Refiner3D, meta: dict, step: int) -> None:
    """MODEL_CARD.md of a run folder, from its training record and loss log."""
    rows = [line.split(",") for line in (out / "loss.csv").read_text(encoding="utf-8").split()] \
        if (out / "loss.csv").is_file() else []
    last = [r for r in rows[-2:]] or [["0", "nan", "nan", "0"]]
    w = network.config.width
    text = CARD.format(width=w, w2=2 * w, w4=4 * w, params=sum(p.numel() for p in network.parameters()),
                       spacing=network.config.spacing_mm, patch=meta.get("patch", PATCH), **_data_text(meta),
                       noise_sd=float(meta.get("noise_sd", NOISE_SD)), gamma=GAMMA_LOG_SD,
                       contrast=f"{CONTRAST_RANGE[0]:g}-{CONTRAST_RANGE[1]:g}", **HOLE_KINDS,
                       steps=step, centre=(f" Patches and their holes are centred at least {meta['centre_depth_mm']:g} mm "
                                           "inside the brain, where deep white-matter lesions lie."
                                           if meta.get("centre_depth_mm") else ""),
                       batch=meta["batch_size"], lr=meta["lr"], seed=meta["seed"],
                       minutes=meta["wall_time_s"] / 60, torch=meta["torch"],
                       hardware=meta.get("hardware", "one CPU thread"),
                       command=(f"Command: `{meta['command']}`." if meta.get("command") else
                                "Command: not recorded (trained through `core.training.refiner.train`).")
                               + "".join(f" Resumed with `{c}`." for c in meta.get("resumed", [])),
                       mse=float(np.mean([float(r[1]) for r in last])), base=float(np.mean([float(r[2]) for r in last])),
                       averaging=AVERAGING[meta.get("loss", "voxel")], history=_history(meta),
                       inputs=(", and the other hemisphere mirrored and aligned to it (two channels)"
                               if network.config.mirror_inputs else ""),
                       gate=(", plus a learned share (0-1 per voxel) of the mirror's detail (`refine3d --mirror 0.5`: "
                             "that share)" if network.config.mirror_inputs else ""),
                       deform=(f"\n{float(meta['deform']):.0%} of the patches{' without the mirror' if meta.get('mirror') else ''} are also rotated (+/-{DEFORM_MAX_DEGREES:g} deg "
                               f"about each axis), scaled (x{1 - DEFORM_SCALE:g}-{1 + DEFORM_SCALE:g}) and warped "
                               f"(smooth displacements up to {DEFORM_WARP_VOXELS:g} voxels)."
                               if meta.get("deform") else ""),
                       remap=(f"\n{float(meta['remap']):.0%} of the patches get a random tissue contrast: intensities "
                              f"{', '.join(f'{k:g}' for k in REMAP_KNOTS)} (of 0..1) moved by up to {REMAP_SHIFT:g} on an "
                              f"increasing curve." if meta.get("remap") else ""),
                       mirror=(f"\nMirror inputs: {float(meta['mirror']):.0%} of the patches get the mirrored hemisphere as the fill "
                               "gives it (the brain's mid-sagittal reflection, aligned by demons around the hole; two channels: "
                               "the aligned mirror minus the filled patch, and its detail in the hole); the network adds a "
                               "learned share (0-1 per voxel) of that detail."
                               + (f" In {float(meta['mirror_lesions']):.0%} of those the mirror shows a dark lesion "
                                  f"({LESION_DARKENING[0] * 100:g}-{LESION_DARKENING[1]:.0%} darker) where it mirrors the "
                                  "hole: an unpainted lesion on the other side, which the "
                                  "fill must not copy." if meta.get("mirror_lesions") else "")
                               if meta.get("mirror") else ""),
                       blur=(f"\n{float(meta['blur']):.0%} of the patches are smoothed by a Gaussian of 0-{BLUR_MAX_SIGMA:g} "
                             f"voxels drawn for each axis." if meta.get("blur") else ""),
                       slabs=(f"\n{float(meta['slabs']):.0%} of the patches are seen through thick slices: averaged along a "
                              f"random axis into slabs of {SLAB_VOXELS[0]}-{SLAB_VOXELS[1]} voxels and interpolated back "
                              "linearly, as the fill resamples a thick-slice scan (the mirror in the same slices)."
                              if meta.get("slabs") else ""))
    write_atomically(out / "MODEL_CARD.md", lambda p: p.write_text(text, encoding="utf-8"))

