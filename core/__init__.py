"""Engine for filling lesions in brain MRI with deep generative models (no Qt)."""

__version__ = "0.1.0"
