"""`scripts/fill_ceiling.py`: its noise estimate recovers white noise under smooth anatomy and ignores the anatomy."""

import numpy as np
from conftest import load_script


def test_noise_sd_recovers_white_noise_and_ignores_smooth_structure():
    script = load_script("fill_ceiling")
    z, y, x = np.mgrid[:40, :40, :40].astype(np.float64)
    smooth = 100 + 3 * x - 2 * y + 0.05 * (x - 20) ** 2 + 0.04 * (y - 20) * (z - 20)
    hole = (x - 20) ** 2 + (y - 20) ** 2 + (z - 20) ** 2 <= 12 ** 2
    noise = np.random.default_rng(0).normal(0, 2.0, smooth.shape)
    assert script.noise_sd(smooth, hole) < 1e-6
    assert abs(script.noise_sd(smooth + noise, hole) - 2.0) < 0.15
