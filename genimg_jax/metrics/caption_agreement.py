"""Caption agreement: do generated images show what their captions ask for, judged by the shipped digits net.

The captions of the embedded captioned sources parse back to their content (data/text/grammar.py), so each
named digit can be checked where the caption puts it:
- digit scenes (`digit_scenes:`): every placement's square (`scenes.scene_box`, at the images' resolution) is
  cropped, resized to the net's 32x32 and classified; `digit_agreement` is the fraction of named digits the net
  recognises, `exact_match` the fraction of images in which it recognises all of them.
- digit captions (`digits_captions`): the whole image is classified; `digit_agreement` is the fraction whose class
  is the named digit.
Images are [-1, 1] NHWC floats of one or three channels (three are reduced to luma, as the data sources do).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genimg_jax.data.text.grammar import Placement, parse_digit_caption, parse_scene_caption
from genimg_jax.data.text.scenes import scene_box
from genimg_jax.data.text.vocabulary import Vocabulary
from genimg_jax.metrics import digits_net
from genimg_jax.metrics.chunked import apply_in_chunks
from genimg_jax.metrics.net_input import fit_to_net

_CHUNK = 512  # crops classified per call


@jax.jit
def classify(params: dict, images: jax.Array) -> jax.Array:
    """The digits net's class of each [-1, 1] NHWC image (1 or 3 channels, any size: resized to 32x32)."""
    resized = fit_to_net(images, digits_net.RESOLUTION, channels=1)
    with jax.default_matmul_precision("float32"):
        logits = digits_net.DigitsNet().apply({"params": params}, resized)["logits"]
    return jnp.argmax(logits, axis=-1)


def _classify_all(params: dict, images: np.ndarray) -> np.ndarray:
    """`classify` over any number of images (`chunked.apply_in_chunks`)."""
    return apply_in_chunks(lambda chunk: classify(params, chunk), np.asarray(images, np.float32), chunk=_CHUNK)


def caption_texts(captions: Sequence[str] | np.ndarray, vocabulary: Vocabulary | None = None) -> list[str]:
    """Captions as text: given as text, or as token ids (N, L) decoded with `vocabulary`."""
    if isinstance(captions, np.ndarray | jax.Array):
        if vocabulary is None:
            raise ValueError("captions given as tokens need the vocabulary that encoded them")
        return [vocabulary.decode(tokens) for tokens in np.asarray(captions)]
    return list(captions)


def placement_matches(
    images: np.ndarray | jax.Array, layouts: Sequence[Sequence[Placement]], params: dict | None = None
) -> list[np.ndarray]:
    """Per image, a bool per placement of its layout: whether the net sees that digit in that placement's square."""
    images = np.asarray(images, np.float32)
    if len(images) != len(layouts):
        raise ValueError(f"{len(images)} images for {len(layouts)} layouts")
    params = digits_net.load_params() if params is None else params
    resolution = images.shape[1]
    placements = [(i, p.digit, scene_box(p.cell, p.size, resolution)) for i, ps in enumerate(layouts) for p in ps]
    classes = np.zeros(len(placements), np.int64)
    for top, left, side in {box for _, _, box in placements}:  # one batch of crops per square
        chosen = [k for k, (_, _, box) in enumerate(placements) if box == (top, left, side)]
        crops = images[[placements[k][0] for k in chosen], top : top + side, left : left + side]
        classes[chosen] = _classify_all(params, crops)
    hits = classes == np.array([digit for _, digit, _ in placements], np.int64)
    return np.split(hits, np.cumsum([len(layout) for layout in layouts])[:-1])


def scene_agreement(
    images: np.ndarray | jax.Array,
    captions: Sequence[str] | np.ndarray,
    vocabulary: Vocabulary | None = None,
    params: dict | None = None,
) -> dict[str, float]:
    """{"digit_agreement", "exact_match"} of images generated for scene captions (text, or tokens + vocabulary)."""
    layouts = [parse_scene_caption(text) for text in caption_texts(captions, vocabulary)]
    matches = placement_matches(images, layouts, params)
    return {
        "digit_agreement": float(np.mean(np.concatenate(matches))),
        "exact_match": float(np.mean([m.all() for m in matches])),
    }


def digit_agreement(
    images: np.ndarray | jax.Array,
    captions: Sequence[str] | np.ndarray,
    vocabulary: Vocabulary | None = None,
    params: dict | None = None,
) -> dict[str, float]:
    """{"digit_agreement"}: the fraction of images the net classifies as the digit their caption names."""
    named = np.array([parse_digit_caption(text) for text in caption_texts(captions, vocabulary)])
    params = digits_net.load_params() if params is None else params
    return {"digit_agreement": float(np.mean(_classify_all(params, np.asarray(images, np.float32)) == named))}
