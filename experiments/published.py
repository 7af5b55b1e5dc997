"""Every published number the studies compare with, in one place so that each can be checked against its source.

Copied from the docstrings of the CIFAR-10 variants in configs/ (value, paper, table, protocol as they state them);
"not checked" repeats a docstring's own warning. Keys are the config each number belongs to, then the
overrides that make the published setting where it differs from the variant (e.g. unconditional).
"""

from genimg_jax.experiments import Published

UNRECORDED = "sample count and reference split not recorded"

DCGAN = {
    "is_mean": Published(6.16, "Gulrajani et al. 2017 (as listed there for DCGAN)", "Table 3", UNRECORDED),
    "fid": Published(37.7, "Heusel et al. 2017", "Table 1, DCGAN, 'orig' column (lr 1e-4, 100k updates)", UNRECORDED),
}
WGAN_GP = {
    "is_mean": Published(7.86, "Gulrajani et al. 2017", "Table 3, unsupervised", UNRECORDED),
    "fid": Published(29.3, "Heusel et al. 2017 (measured by them)", "Table 1, WGAN-GP, 'orig' column", UNRECORDED),
}
SNGAN = {
    "is_mean": Published(8.22, "Miyato et al. 2018", "Table 2, ResNet, SN-GAN with hinge loss (Eq. 17)", UNRECORDED),
    "fid": Published(21.7, "Miyato et al. 2018", "Table 2, ResNet, SN-GAN with hinge loss (Eq. 17)", UNRECORDED),
}
CGAN_PROJECTION = {
    "is_mean": Published(8.62, "Miyato & Koyama 2018 (as listed by Papers with Code)", "not checked", UNRECORDED),
    "fid": Published(17.5, "Miyato & Koyama 2018 (as listed by Papers with Code)", "not checked", UNRECORDED),
}
ADA_COMPARISON = "Karras et al. 2020 (ADA), CIFAR-10 comparison (official README's 'Fig. 11b' models)"
STYLEGAN2_CONDITIONAL = {
    "fid": Published(6.96, ADA_COMPARISON, "StyleGAN2 baseline, no augmentation; not checked", UNRECORDED),
    "is_mean": Published(9.53, ADA_COMPARISON, "StyleGAN2 baseline, no augmentation; not checked", UNRECORDED),
}
STYLEGAN2_UNCONDITIONAL = {
    "fid": Published(8.32, ADA_COMPARISON, "StyleGAN2 baseline, no augmentation; not checked", UNRECORDED),
    "is_mean": Published(9.21, ADA_COMPARISON, "StyleGAN2 baseline, no augmentation; not checked", UNRECORDED),
}
STYLEGAN2_ADA_CONDITIONAL = {
    "fid": Published(2.42, "Karras et al. 2020 (ADA)", "abstract ('record FID ... 2.42')", UNRECORDED),
    "is_mean": Published(10.14, ADA_COMPARISON, "not checked", UNRECORDED),
}
STYLEGAN2_ADA_UNCONDITIONAL = {
    "fid": Published(2.92, ADA_COMPARISON, "not checked", UNRECORDED),
    "is_mean": Published(9.83, ADA_COMPARISON, "not checked", UNRECORDED),
}
DDPM = {
    "fid": Published(
        3.17, "Ho et al. 2020", "Table 1, unconditional, L_simple", f"1000 network evaluations; {UNRECORDED}"
    ),
    "is_mean": Published(
        9.46, "Ho et al. 2020", "Table 1, unconditional, L_simple", f"1000 network evaluations; {UNRECORDED}"
    ),
}
EDM_UNCONDITIONAL = {
    "fid": Published(1.97, "Karras et al. 2022", "Table 2, unconditional, VP, DDPM++", f"35 NFE; {UNRECORDED}"),
}
EDM_CONDITIONAL = {
    "fid": Published(1.79, "Karras et al. 2022", "Table 2, class-conditional", f"35 NFE; {UNRECORDED}"),
}
