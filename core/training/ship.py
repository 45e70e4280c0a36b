"""Copy a trained slice model into a shipped model folder: weights in float16, config, model card.

    python -m core.training.ship RUN_DIR DEST_DIR

Half precision halves the download (the four study models: 21.3 -> 10.7 MB); `core.checkpoint.load_model`
casts the weights back to float32, so inference runs exactly as with float32 weights rounded to float16
(relative rounding below 0.05%). An existing "Held-out quality" section of DEST_DIR's card is kept.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..atomic import write_atomically
from ..checkpoint import CONFIG, WEIGHTS, load_model
from .card import write_card


def ship(run: Path, dest: Path) -> Path:
    """Write `run`'s model into `dest` with float16 weights; returns `dest`. The result loads like the run."""
    load_model(run)   # refuse a damaged run before anything is written
    tensors = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous()
               for k, v in load_file(str(run / WEIGHTS)).items()}
    dest.mkdir(parents=True, exist_ok=True)
    write_atomically(dest / WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    write_atomically(dest / CONFIG, lambda tmp: shutil.copyfile(run / CONFIG, tmp))
    load_model(dest)
    write_card(dest)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m core.training.ship RUN_DIR DEST_DIR")
    print(ship(Path(sys.argv[1]), Path(sys.argv[2])))
