"""Copy a trained slice model into a shipped model folder: weights in float16, config, model card.

    python -m core.training.ship RUN_DIR DEST_DIR

Half precision halves a model's download (gan_k7: 6.9 -> 3.5 MB); `core.checkpoint.load_model`
casts the weights back to float32, so inference runs exactly as with float32 weights rounded to float16
(relative rounding below 0.05%). An existing "Held-out quality" section of DEST_DIR's card is kept.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
from safetensors.torch import load_file, save_file

from ..atomic import write_atomically
from ..checkpoint import CONFIG, WEIGHTS, load_model
from ..errors import EXIT_USER_ERROR, InpaintError
from .card import write_card


def ship(run: Path, dest: Path) -> Path:
    """Write `run`'s model into `dest` with float16 weights; returns `dest`. The result loads like the run."""
    run, dest = Path(run), Path(dest)
    if dest.exists() and not dest.is_dir():
        raise InpaintError(f"{dest} is a file; give the folder the shipped model goes to.")
    if dest.resolve() == run.resolve():
        raise InpaintError(f"{dest} is the run itself; ship into another folder (the run keeps its float32 weights "
                           "to resume from).")
    load_model(run)   # refuse a damaged run before anything is written
    tensors = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous()
               for k, v in load_file(str(run / WEIGHTS)).items()}
    dest.mkdir(parents=True, exist_ok=True)
    write_atomically(dest / WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    write_atomically(dest / CONFIG, lambda tmp: shutil.copyfile(run / CONFIG, tmp))
    load_model(dest)
    write_card(dest)
    return dest


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m core.training.ship RUN_DIR DEST_DIR`: 0 when shipped, 2 with one sentence for a user error."""
    parser = argparse.ArgumentParser(prog="python -m core.training.ship", description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a slice model's training run (inpaint train --out)")
    parser.add_argument("dest", type=Path, metavar="DEST_DIR", help="the shipped model's folder (e.g. "
                                                                    "resources/models/NAME)")
    args = parser.parse_args(argv)
    try:
        print(ship(args.run, args.dest))
    except InpaintError as exc:
        print(f"ship: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
