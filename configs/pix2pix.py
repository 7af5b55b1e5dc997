"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks").

Embedded variants (32x32, train here in minutes; measured numbers: experiments/records/image_to_image.md):
- `faces_from_sketch` (default): the embedded faces from their pencil sketches (`data.degradation=sketch`).
- `faces_to_sketch`: and back: the faces' pencil sketches drawn from the faces (`data.direction=BtoA`).
- `faces_sr4`: 4x super-resolution of the faces (8x8 -> 32x32; the baseline is bicubic upsampling), with
  `model.residual` (not pix2pix's): G adds a correction to the bicubic upsampling, so it starts at the baseline.
- `faces_denoise`: Gaussian denoising, sigma 25 on the 0..255 scale.
- `faces_inpaint`: box inpainting, with the mask as an extra input channel and the known pixels kept.
- `ct_denoise`: low-dose CT phantoms: filtered back-projection -> phantom.
They use the reference's recipe (U-Net + 70x70 PatchGAN... reduced to the 32x32 images: a 5-level U-Net, which
has no dropout blocks, and a 2-layer 34x34 PatchGAN; widths 32), instance norm with affine parameters, and
batch 16 instead of 1, so that a CPU step does useful work.

facades: the paper's setup for labels -> facades (Sec. 4 and appendix 6.2: 400 training images, 200 epochs,
batch 1, Adam lr 2e-4, beta1 0.5, L1 weight 100, random jitter and mirroring), as the reference's defaults
(unet_256, basic 70x70 D, vanilla GAN loss, dropout 0.5 also at test time, lr held for 100 epochs then decayed
linearly to 0 over 100). Prepare the dataset as a folder of side-by-side AB images (the reference's
`datasets/facades`) and pass its train folder with `--config.data.source=folder_pairs:PATH`; direction BtoA maps
labels to photos, as the paper's figures. Deviations, named:
- batch norm over a batch of one image is instance norm with a learned scale and shift; the config uses that
  (`model.norm=instance_affine`), which computes the same in training and at test time for any eval batch;
- no random jitter (resize to 286 and random 256 crop): the pipeline has flips only, so mirroring is kept.
No published number is quoted: the paper evaluates facades qualitatively and Cityscapes by FCN-score, which
needs a pretrained segmentation network this codebase does not ship.
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.pix2pix import decay_over_second_half, pix2pix_config

EMBEDDED = {
    "faces_from_sketch": {"source": "faces", "degradation": "sketch"},
    "faces_to_sketch": {"source": "faces", "degradation": "sketch", "direction": "BtoA"},
    "faces_sr4": {"source": "faces", "degradation": "downsample:4"},
    "faces_denoise": {"source": "faces", "degradation": "noise:gaussian:25"},
    "faces_inpaint": {"source": "faces", "degradation": "mask:box"},
    "ct_denoise": {"source": "ct:lowdose:300", "degradation": ""},
}
VARIANTS = (*EMBEDDED, "facades")
FACADES_TRAIN_IMAGES = 400


def get_config(variant: str = "faces_from_sketch") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = pix2pix_config()
    if variant == "facades":
        epoch = FACADES_TRAIN_IMAGES
        config.data.update(
            {"source": "folder_pairs:", "direction": "BtoA", "resolution": 256, "channels": 3, "random_flip": True}
        )
        config.model.update({"num_downs": 8, "norm": "instance_affine"})
        config.train.update(
            {"steps": 200 * epoch, "batch_size": 1, "sample_every": 5 * epoch, "checkpoint_every": 5 * epoch}
        )
        config.eval.batch_size = 8
        decay_over_second_half(config)
        return config
    config.data.update({"resolution": 32, "channels": 1, **EMBEDDED[variant]})
    config.model.update({"g_features": 32, "d_features": 32, "d_layers": 2, "norm": "instance_affine"})
    config.model.use_mask = config.model.keep_known = variant == "faces_inpaint"
    config.model.residual = variant == "faces_sr4"
    config.train.update({"steps": 2000, "batch_size": 16, "sample_every": 500, "checkpoint_every": 500})
    config.train.num_sample_images = 16
    decay_over_second_half(config)
    config.eval.metrics = "psnr,ssim"
    return config
