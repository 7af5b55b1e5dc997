"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks").

Domain A is `data.unpaired_source` (the batch's `source` field), domain B is `data.source` (`image`); `sample`
and the illustrations translate A -> B.

- `digits_faces` (default, embedded, trains here): the embedded digits (A) to the embedded faces (B), 32x32 grey,
  with the reference's recipe reduced to the size: a ResNet generator of width 16 with 3 residual blocks, a
  2-layer PatchGAN of width 16, batch 8 instead of 1 so that a CPU step does useful work.
- `horse2zebra`: the paper's setup (Sec. 4 and appendix 7.1, the reference's defaults): resnet_9blocks, 70x70
  PatchGAN, instance norm, LSGAN, lambda 10, identity 0.5, pool 50, Adam 2e-4 / beta1 0.5, batch 1, 256 px,
  200 epochs with the rate decayed linearly to 0 over the last 100. Pass the reference's folders:
  `--config.data.source=folder:.../trainB --config.data.unpaired_source=folder:.../trainA` (zebras are B).
  An epoch is max(|A|, |B|) = max(1067 horses, 1334 zebras) images, as the reference's unaligned dataset and
  `UnpairedSource` both count it. Deviation, named: flips only, no resize-to-286-and-crop jitter.
  No published number is quoted: the paper evaluates horse2zebra qualitatively.
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.cyclegan import cyclegan_config
from genimg_jax.methods.pix2pix import decay_over_second_half

VARIANTS = ("digits_faces", "horse2zebra")
HORSE2ZEBRA_EPOCH = max(1067, 1334)  # trainA horses, trainB zebras


def get_config(variant: str = "digits_faces") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = cyclegan_config()
    if variant == "horse2zebra":
        epoch = HORSE2ZEBRA_EPOCH
        config.data.update(
            {"source": "folder:", "unpaired_source": "folder:", "resolution": 256, "channels": 3, "random_flip": True}
        )
        config.train.update(
            {"steps": 200 * epoch, "batch_size": 1, "sample_every": 5 * epoch, "checkpoint_every": 5 * epoch}
        )
        config.eval.batch_size = 8
        decay_over_second_half(config)
        return config
    config.data.update({"source": "faces", "unpaired_source": "digits", "resolution": 32, "channels": 1})
    config.model.update({"n_blocks": 3, "g_features": 16, "d_features": 16, "d_layers": 2})
    config.train.update({"steps": 2000, "batch_size": 8, "sample_every": 500, "checkpoint_every": 500})
    config.train.num_sample_images = 16
    decay_over_second_half(config)
    return config
