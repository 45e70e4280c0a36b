"""Engine for filling lesions in brain MRI with healthy-looking tissue: 3D fills and learned models (no Qt)."""

__version__ = "0.1.0"
