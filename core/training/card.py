"""MODEL_CARD.md written from a trained model's config.json (its training record).

`python -m core.training.card MODEL_DIR [...]` writes MODEL_DIR/MODEL_CARD.md; an existing
"Held-out quality" section is kept, so filled-in benchmark figures survive a rewrite.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cohort import licences, subjects_text
from ..jsonfiles import parse_json

HELD_OUT = "## Held-out quality"
TEMPLATE_NOTE = ("ICBM 2009a non-linear symmetric T1 template (brain-extracted average of 152 adults; "
                 "Fonov et al. 2009/2011, Collins et al. 1999; see resources/mni152/NOTICE.md)")
TEMPLATE = "mni152/t1.nii.gz"


def tissue_images(rec: dict) -> int:
    """How many training images had GM/WM maps for contrast synthesis: as recorded, or, in records made before
    it was, the template's (the only images known to have them)."""
    aug = rec.get("augmentation", {})
    if "tissue_images" in aug:
        return int(aug["tissue_images"])
    return sum(d["path"].endswith(TEMPLATE) for d in rec.get("data", []))


def _augmentation(aug: dict, tissue: int, images: int) -> list[str]:
    """The augmentations that were applied (contrast synthesis only where an image had GM/WM maps)."""
    lines = []
    if aug.get("geometric"):
        lines += [f"- random affine per slice: rotation within ±{aug['rotate_deg']}°, log-scale SD {aug['log_scale_sd']}, "
                  f"per-axis scale ±{aug['anisotropy']}, shear ±{aug['shear']}, translation ±{aug['translate_mm']} mm",
                  f"- smooth elastic deformation (SD {aug['elastic_mm']} mm on a {aug['elastic_points']}x"
                  f"{aug['elastic_points']} control grid), left-right flip with probability {aug['flip']}",
                  "- the warp is composed with the inference slice grid, so each slice is one interpolation"]
    if aug.get("intensity"):
        lines += [f"- intensity: gamma (log SD {aug['log_gamma_sd']}), smooth multiplicative bias field "
                  f"(log SD {aug['bias_sd']}), Gaussian noise in the brain (SD up to {aug['noise_max']} of the range)"]
    if aug.get("tissue") and tissue:
        which = "" if tissue == images else f" of the {tissue} of {images} images that had them"
        lines += [f"- T1-like contrast synthesised from the GM/WM maps (CSF = brain - GM - WM) with random "
                  f"per-tissue intensities, for {aug['synth']:.0%} of slices{which}"]
    elif aug.get("tissue"):
        lines += ["- no T1-like contrast synthesis: no training image had GM/WM maps beside it"]
    return lines or ["- none"]


def _data_sentence(template: bool, files: str, scans: list[str], rec: dict) -> str:
    """What the model learned from: the template or other files, the cohort's scans, the run it started from."""
    parts = []
    if template or files:
        synthesis = ", with its grey/white matter probability maps for contrast synthesis" \
            if rec.get("augmentation", {}).get("tissue") and tissue_images(rec) else ""
        parts.append(f"{TEMPLATE_NOTE + synthesis if template else 'Brain-extracted healthy T1 images'}: {files}.")
    if scans:
        parts.append(f"{len(scans)} real adult T1 scans, each skull-stripped with its brain mask: "
                     f"{subjects_text(scans)}.")
    if rec.get("validation"):
        parts.append(f"Validation scans, never drawn from and used for every choice: {subjects_text(rec['validation'])}.")
    init = rec.get("init")
    if init:
        before = init.get("training") or {}
        sources = ", ".join(f"`{d['path']}`" for d in before.get("data", []))
        parts.append(f"It started from the weights of `{init['path']}` (sha256 {init['sha256'][:12]}…: "
                     f"{before.get('steps', '?')} steps on {sources or 'unrecorded data'}), with fresh optimisers.")
    return " ".join(parts) + " "


def model_card(name: str, config: dict) -> str:
    """Markdown card (without the held-out section) from a config with a training record."""
    arch, space, rec = config["architecture"], config["model_space"], config.get("training", {})
    settings = rec.get("settings", {})
    paths = [d["path"] for d in rec.get("data", [])]
    scans = [p for p in paths if "_T1w" in p]
    template = any(p.endswith(TEMPLATE) for p in paths)
    files = ", ".join(f"`{d['path']}` (sha256 {d['sha256'][:12]}…)" for d in rec.get("data", []) if d["path"] not in scans)
    kind = "GAN (DCGAN-style generator + spectrally normalised discriminator)" if arch["kind"] == "gan" \
        else "VAE (inpainting-aware encoder + decoder)"
    command = rec.get("command", "")
    if command.startswith("cli.py "):  # records written before `python -m` entry points were spelled out
        command = "python -m core.cli " + command[len("cli.py "):]
    losses = ", ".join(f"{k} {v:.4g}" for k, v in rec.get("final_losses", {}).items())
    lines = [
        f"# Model card: {name}", "",
        f"{kind}, kernel {arch['kernel']}, latent {arch['latent']}, width {arch['width']}, "
        f"{arch['size']}x{arch['size']} pixels of {space['spacing_mm']} mm, {space['axis']} slices.", "",
        "## Intended use",
        "Filling lesion masks in brain-extracted adult T1-weighted MRI with `inpaint fill` (latent search plus "
        "Poisson blending). Research use only; not a medical device. Filled voxels are synthetic.", "",
        "## Training data",
        _data_sentence(template, files, scans, rec) +
        "Slices of the chosen plane with at least 15% of the largest slice's brain area, mapped exactly as "
        "inference maps them (closest-RAS reorientation, grid centred on the brain bounding box, in-plane "
        "anti-aliasing, intensities 0 -> -1 and the 99.5th brain percentile -> +1 by `core.normalize`). "
        + ("A single template brain: the augmentation below is what lets it generalise to other brains."
           if len(paths) == 1 else f"{len(paths)} brains."),
        *licences(paths), "",
        "## Augmentation", *_augmentation(rec.get("augmentation", {}), tissue_images(rec), len(paths)), "",
    ]
    if arch["kind"] == "vae":
        lines += ["## Encoder",
                  "The encoder sees the slice with random holes (boxes or smooth blobs, 3-40% of the grid wide; "
                  "20% of slices without a hole) set to zero plus the known-pixel mask, and the decoder is trained to "
                  "reconstruct the FULL slice. Inference starts one latent-search restart from the encoder's "
                  "estimate for the masked slice. Latent prior: standard normal (`latent_prior: normal`). "
                  f"Loss: MSE + {settings.get('kl')} x KL / pixels.", ""]
    else:
        lines += ["## Objective",
                  "Non-saturating GAN loss; the discriminator (spectral norm) is kept in the checkpoint for the "
                  "prior loss. Latent prior: uniform on [-1, 1] (`latent_prior: uniform`).", ""]
    lines += [
        "## Training run",
        f"- command: `{command}` (see `scripts/train_all.sh`)",
        f"- steps: {rec.get('steps')} of batch {settings.get('batch_size')}, learning rate {rec.get('learning_rate')}, "
        f"seed {settings.get('seed')}, wall-clock budget {settings.get('minutes')} min",
        f"- wall time: {rec.get('wall_time_s', 0) / 60:.1f} min on {rec.get('machine')} ({rec.get('device')}, "
        f"{rec.get('threads')} thread(s), {rec.get('world_size')} process(es), torch {rec.get('torch')}); "
        "the machine's 2 cores were shared with other work",
        f"- final losses (last step): {losses}", "",
        "## Limitations",
        (f"Retrained for a CPU-limited time ({rec.get('steps')} steps) on {len(scans)} real scans of about 1 mm, "
         f"seen on the study's {space['spacing_mm']} mm grid; axial slices only, brain-extracted input expected. "
         if scans else
         "Trained on one template (an average brain, smoother than any single scan) for a CPU-limited time "
         f"({rec.get('steps')} steps), axial slices only, brain-extracted input expected. ")
        + ("GAN samples still show high-frequency artefacts, only coarse anatomy and possibly low diversity "
           "(partial mode collapse) at this training length; "
           "fills rely on the context loss and Poisson blending." if arch["kind"] == "gan" else
           "VAE reconstructions are smooth: fills miss fine, subject-specific detail such as individual sulci."),
        "",
    ]
    return "\n".join(lines)


def write_card(directory: Path) -> Path:
    """Write MODEL_CARD.md into a model folder, keeping an existing held-out section."""
    config = parse_json((directory / "config.json").read_text(encoding="utf-8"))
    target = directory / "MODEL_CARD.md"
    held = (f"{HELD_OUT}\n\nNot measured yet: score it on brains it never saw with "
            f"`inpaint bench --models {directory}`.\n")
    existing = target.read_text(encoding="utf-8") if target.exists() else ""
    if HELD_OUT in existing:
        held = existing[existing.index(HELD_OUT):]
    target.write_text(model_card(directory.name, config) + "\n" + held, encoding="utf-8")
    return target


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(write_card(Path(arg)))
