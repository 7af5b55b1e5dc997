"""Every published number the studies compare with, in one place so that each can be checked against its source.

Each value is the one its config's docstring quotes, with how it was checked (paper, table or listing) and the
protocol where the source states it; numbers that could not be checked are not here (see the configs). Keys are
the config each number belongs to, then the overrides that make the published setting where it differs.
"""

from genimg_jax.experiments import Published

UNRECORDED = "sample count and reference split not recorded"
PAPERS_WITH_CODE = "checked: Papers with Code's results from the paper, not the paper's table"

TRANSCRIPTION = "checked: text transcriptions of the paper, not the PDF"

WGAN_GP = {
    "is_mean": Published(
        7.86,
        "Gulrajani et al. 2017",
        f"Table 3, unsupervised, WGAN-GP ResNet, 7.86 +- .07 ({TRANSCRIPTION})",
        "sample count not stated with the table",
    ),
}
SNGAN_PROTOCOL = "Appendix B.1: IS of 5000 samples (mean of 10 runs); FID over 10000 and 5000 samples"
SNGAN = {
    "is_mean": Published(
        8.22,
        "Miyato et al. 2018",
        f"Table 2, ResNet, SN-GANs Eq. (17) (hinge), 8.22 +- .05 ({TRANSCRIPTION})",
        SNGAN_PROTOCOL,
    ),
    "fid": Published(
        21.7,
        "Miyato et al. 2018",
        f"Table 2, ResNet, SN-GANs Eq. (17) (hinge), 21.7 +- .21 ({TRANSCRIPTION})",
        SNGAN_PROTOCOL,
    ),
}
CGAN_PROJECTION = {
    "is_mean": Published(8.62, "Miyato & Koyama 2018", PAPERS_WITH_CODE, UNRECORDED),
    "fid": Published(17.5, "Miyato & Koyama 2018", PAPERS_WITH_CODE, UNRECORDED),
}
STYLEGAN2_ADA_CONDITIONAL = {
    "fid": Published(
        2.42,
        "Karras et al. 2020 (ADA)",
        "checked: abstract and both official READMEs",
        "fid50k_full: 50k generated images against the full training set",
    ),
}
DDPM_PROTOCOL = (
    "1000 steps; 50000 samples, FID against the training set (Sec. 4.1, Appendix B), at the checkpoint of "
    "minimum FID over training"
)
DDPM = {
    "fid": Published(3.17, "Ho et al. 2020", f"Table 1, L_simple ({TRANSCRIPTION})", DDPM_PROTOCOL),
    "is_mean": Published(9.46, "Ho et al. 2020", f"Table 1, L_simple ({TRANSCRIPTION})", DDPM_PROTOCOL),
}
EDM_PROTOCOL = "35 NFE; 50k generated images against the 50k training images, minimum of 3 seed ranges"
EDM_UNCONDITIONAL = {
    "fid": Published(1.97, "Karras et al. 2022", "Table 2, VP, DDPM++ (checked: abstract, README)", EDM_PROTOCOL),
}
EDM_CONDITIONAL = {
    "fid": Published(1.79, "Karras et al. 2022", "Table 2, VP, DDPM++ (checked: abstract, README)", EDM_PROTOCOL),
}
