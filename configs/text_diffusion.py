"""Text-to-image diffusion (methods/text_diffusion.py): a cross-attention U-Net with a jointly trained transformer
text encoder and classifier-free guidance, the conditioning of latent diffusion (Rombach et al. 2022) in pixel
space.

Variants (both on the embedded digits with template captions, `data.source = "digits_captions"`, grayscale):
- `digits` (default): 32x32, a small U-Net (widths 32, 64, 64; self- and cross-attention at 16x16 and 8x8 and in
  the middle) and a 2-layer, 64-wide text encoder, 5000 steps.
- `digits16`: 16x16, ddpm.py:digits' tiny U-Net (widths 16, 32; attention at 8x8) and a 2-layer, 32-wide text
  encoder, 3000 steps: trains in about 12 minutes on two CPU cores (experiments/records/text_to_image.md).
Both: DDPM's eps-loss on the 1000-step linear schedule, caption dropout 0.1, a 100-step DDPM sampler with
guidance w = 2 ((1 + w) D(x | c) - w D(x | null): Stable Diffusion's scale 1 + w = 3). No published number
applies.

A pretrained CLIP text tower instead of the trained encoder (needs the `text` extra: pip install -e '.[text]'):
download a CLIP model in Hugging Face format with Flax weights yourself, e.g. openai/clip-vit-base-patch32
(config.json, flax_model.msgpack, the tokenizer files, preprocessor_config.json) into DIR; nothing downloads at
run time. Then `--config.model.text.pretrained=DIR --config.data.tokenizer=DIR`: captions are tokenized by CLIP's
BPE, padded with its attention mask (`data.caption_length` at most its context length, 77 for OpenAI's); the
tower is frozen, kept in the state's first_stage and in every checkpoint; the U-Net cross-attends to its last
hidden states and adds its pooled output to the time embedding; the null caption is the empty string's encoding
(`model.text.features`, `num_layers`, `num_heads` and `vocab_size` are then unused). `eval.metrics=clip_score`
with `eval.clip_model=DIR` scores the samples against their captions with the same full CLIP model: the mean of
100 * max(cos, 0) of its image and caption embeddings (torchmetrics' CLIPScore; Hessel et al. 2021 weight by 2.5).
Neither is measured with a real CLIP here (tests/test_clip.py uses a tiny random one).
"""

import ml_collections

from genimg_jax.config import check_variant
from genimg_jax.methods.text_diffusion import text_diffusion_config

VARIANTS = ("digits", "digits16")


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
    check_variant(variant, VARIANTS)
    config = text_diffusion_config()
    config.data.update(source="digits_captions", resolution=32, channels=1)
    config.model.text.vocab_size = 32  # len(data.vocabulary_for(config.data)): the digits grammar's 28 words + 4
    config.model.update(
        features=32, channel_multipliers=(1, 2, 2), num_res_blocks=1, attention_resolutions=(16, 8), dropout=0.0
    )
    config.optim.denoiser.update(learning_rate=1e-3, warmup_steps=100)
    config.train.update(steps=5000, batch_size=64, ema_decay=0.999, sample_every=1000, checkpoint_every=1000)
    config.sample.update(steps=100, guidance_scale=2.0)
    config.eval.every = 1000
    if variant == "digits16":
        config.data.resolution = 16
        config.model.update(features=16, channel_multipliers=(1, 2), attention_resolutions=(8,))
        config.model.text.update(features=32, num_heads=2)
        config.train.steps = 3000
    return config
