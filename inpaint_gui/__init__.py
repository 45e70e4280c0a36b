"""Desktop app `inpaint-gui`: paint a lesion mask on a brain MRI and fill it with a generative model."""
