"""Time the shipped 1 mm refiner's network alone on cubic crops, with its convolutions on oneDNN (as the fill
runs them, `core.refine3d.Conv3d`) and with PyTorch's own choice of kernel (plain `nn.Conv3d`).

    python scripts/time_refiner_network.py [--threads 1] [SIZE ...]      # default sizes 24 32 40 44 52 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.refine3d import Conv3d, default_refiner  # noqa: E402


def best_ms(network, inputs, repeats: int = 3) -> tuple[float, torch.Tensor]:
    """The fastest of `repeats` runs after one warm-up, in ms, and the correction computed."""
    with torch.no_grad():
        network.parts(*inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            correction, _share = network.parts(*inputs)
            times.append(time.perf_counter() - start)
    return 1000.0 * min(times), correction


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[24, 32, 40, 44, 52, 64])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network = default_refiner((1.0, 1.0, 1.0)).network.eval()
    generator = torch.Generator().manual_seed(0)
    for n in args.sizes:
        base = torch.rand((1, 1, n, n, n), generator=generator) * 2 - 1
        hole = torch.zeros_like(base)
        hole[..., n // 3:2 * n // 3, n // 3:2 * n // 3, n // 3:2 * n // 3] = 1
        inputs = (base, hole, torch.randn((1, 2, n, n, n), generator=generator) * 0.1)
        fast, correction = best_ms(network, inputs)
        onednn = Conv3d.forward
        Conv3d.forward = nn.Conv3d.forward      # PyTorch's own dispatch, for comparison
        try:
            plain, reference = best_ms(network, inputs)
        finally:
            Conv3d.forward = onednn
        print(f"{n}^3: oneDNN {fast:.0f} ms, PyTorch's choice {plain:.0f} ms, "
              f"largest difference {float((correction - reference).abs().max()):.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
