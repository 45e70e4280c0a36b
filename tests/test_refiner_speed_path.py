"""The refiner's convolutions run oneDNN on the CPU at any crop size, with the reference kernel's results."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from core.refine3d import Refiner3D, RefinerConfig


def _network() -> Refiner3D:
    torch.manual_seed(0)
    network = Refiner3D(RefinerConfig(width=12, spacing_mm=1.0, mirror_inputs=True)).eval()
    for layer in (network.tail, network.gate):   # zero-initialised: they would hide any difference
        torch.nn.init.normal_(layer.weight, std=0.05)
    return network


def _inputs(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    base = torch.rand((1, 1) + (size,) * 3, generator=generator) * 2 - 1
    hole = torch.zeros_like(base)
    hole[..., size // 3:2 * size // 3, size // 3:2 * size // 3, size // 3:2 * size // 3] = 1
    return base, hole, torch.randn((1, 2) + (size,) * 3, generator=generator) * 0.1


def test_a_small_crop_runs_every_convolution_through_onednn() -> None:
    # one 24-voxel crop at width 12: PyTorch's own dispatch would pick its slow reference kernel (slow_conv3d)
    network, inputs = _network(), _inputs(24)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as trace:
        network.parts(*inputs)
    kernels = {event.key for event in trace.key_averages() if "conv" in event.key and "convolution" != event.key}
    assert "aten::mkldnn_convolution" in kernels
    assert not any("slow_conv3d" in key for key in kernels), kernels


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
def test_the_onednn_path_gives_the_reference_kernels_results() -> None:
    network, inputs = _network(), _inputs(24)
    with torch.no_grad():
        correction, share = network.parts(*inputs)
        with torch.backends.mkldnn.flags(enabled=False):   # the reference kernel for every layer
            reference, reference_share = network.parts(*inputs)
    assert correction.abs().max() > 0.01   # the comparison below is not of zeros
    torch.testing.assert_close(correction, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(share, reference_share, rtol=1e-4, atol=1e-5)


def test_training_keeps_gradients_through_the_convolutions() -> None:
    network, (base, hole, mirror) = _network().train(), _inputs(12)
    correction, share = network.parts(base, hole, mirror)
    (correction.square().mean() + share.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in network.parameters())
