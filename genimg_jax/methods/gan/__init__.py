"""Adversarial methods: the GAN assembled from compare_gan-style orthogonal parts (`gan.py`, `components.py`)
and StyleGAN2(-ADA) after stylegan2-ada-pytorch (`stylegan2.py`), with what they share in `common.py`."""
