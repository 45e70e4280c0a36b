"""Training of the slice models: augmentation, slice sampling, GAN/VAE loops (DDP capable), `inpaint train`."""
