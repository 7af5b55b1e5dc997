"""An invisible, keyed presence mark on uint8 images, so a picture this project wrote can be recognised later.

Scheme (1 bit: "marked with this key" or not). The luma's whole-image DCT (orthonormal) is read in a mid-frequency
band (radius 0.1-0.45 of Nyquist, so it survives halving the size and JPEG's coarse high frequencies). A key gives
every coefficient (u, v) a sign from a counter-based hash, the same at any image size. The detector counts the band
coefficients whose sign agrees with the key's: z = (agree - disagree) / sqrt(N). For an image made without the key,
agree ~ Binomial(N, 1/2), so z is about N(0, 1) whatever the picture: `THRESHOLD` = 4 gives a false-positive
rate of about 3e-5 per image. Embedding is informed by the image: it moves the cheapest coefficients (those
nearest zero) to the key's sign, `MARGIN` past zero, until z reaches `TARGET_Z`, and never spends more than a
`min_psnr` distortion budget; it adds the same change to R, G and B, so only luma moves. The moves are redone
after rounding and clipping to 0..255, which undo part of them in saturated regions (digits' black background).
"""

from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

import numpy as np
import scipy.fft

DEFAULT_KEY = "genimg_jax"
BAND = (0.1, 0.45)  # radius of the used DCT coefficients, as a fraction of Nyquist in each direction
TARGET_Z = 6.0  # what embedding aims for; detection needs THRESHOLD, the rest is margin for JPEG and resizing
THRESHOLD = 4.0  # z of a detection: P(z >= 4) under the null is about 3.2e-5
MARGIN = 6.0  # how far past zero a moved coefficient lands (orthonormal DCT units, 0..255 pixels)
MIN_PSNR = 38.0  # the distortion embedding may spend at most, in dB against the original
MIN_COEFFICIENTS = 64  # smaller bands (images under about 21x21) cannot carry a reliable mark
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as JPEG's YCbCr
_CHANNELS_MOVED = {1: np.ones(1), 3: np.ones(3), 4: np.array([1.0, 1.0, 1.0, 0.0])}  # the same change, alpha kept
_EMBED_ROUNDS = 6  # re-embedding rounds that make up for what rounding and clipping took away


class Detection(NamedTuple):
    detected: bool
    score: float  # z: about N(0, 1) for images without the mark


def key_seed(key: str) -> int:
    """The 64-bit seed of a text key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fixed, well-mixed 64-bit hash of each value (uint64 arithmetic wraps)."""
    values = values + np.uint64(0x9E3779B97F4A7C15)
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def key_signs(key: str, height: int, width: int) -> np.ndarray:
    """+-1 per DCT coefficient (u, v): a hash of (key, u, v), so a coefficient has its sign at every image size."""
    rows = np.arange(height, dtype=np.uint64)[:, None] << np.uint64(32)
    columns = np.arange(width, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        bits = _splitmix64((rows | columns) ^ np.uint64(key_seed(key))) >> np.uint64(63)
    return bits.astype(np.float64) * 2.0 - 1.0


def band_mask(height: int, width: int) -> np.ndarray:
    """The coefficients the mark lives in: radius sqrt((u/H)^2 + (v/W)^2) within `BAND`."""
    radius = np.hypot(np.arange(height)[:, None] / height, np.arange(width)[None, :] / width)
    return (radius >= BAND[0]) & (radius <= BAND[1])


def luma(image: np.ndarray) -> np.ndarray:
    """Float luma of an HW, HW1, HW3 or HW4 (alpha ignored) uint8 image."""
    _check_image(image)
    pixels = image.astype(np.float64)
    if pixels.ndim == 2:
        return pixels
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels[..., :3] @ LUMA_WEIGHTS


def band_size(height: int, width: int) -> int:
    """How many coefficients carry the mark in a `height` x `width` image."""
    return int(band_mask(height, width).sum())


def can_carry(height: int, width: int) -> bool:
    """Whether a `height` x `width` image is large enough for a reliable mark (`MIN_COEFFICIENTS`)."""
    return band_size(height, width) >= MIN_COEFFICIENTS


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3, 4))):
        raise ValueError(f"expected a uint8 HW, HW1, HW3 or HW4 image, got {image.dtype} {image.shape}")
    count = band_size(*image.shape[:2])
    if count < MIN_COEFFICIENTS:
        raise ValueError(
            f"a {image.shape[0]}x{image.shape[1]} image is too small for the watermark "
            f"({count} band coefficients, {MIN_COEFFICIENTS} needed)"
        )


def _agreement(image: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(luma DCT, flat indices of the band, key sign times coefficient there: > 0 where they agree)."""
    coefficients = scipy.fft.dctn(luma(image), norm="ortho")
    indices = np.flatnonzero(band_mask(*coefficients.shape))
    signs = key_signs(key, *coefficients.shape).flat[indices]
    return coefficients, indices, signs * coefficients.flat[indices]


def _z(agreement: np.ndarray) -> float:
    return float(np.sum(np.sign(agreement)) / math.sqrt(agreement.size))


def detect(image: np.ndarray, key: str = DEFAULT_KEY, threshold: float = THRESHOLD) -> Detection:
    """Whether `image` carries the mark of `key`, with its z-score."""
    score = _z(_agreement(image, key)[2])
    return Detection(score >= threshold, score)


def _moves(agreement: np.ndarray, goal: float, budget: float) -> np.ndarray:
    """How far to push each band coefficient along the key's sign: coefficients within `MARGIN` of the key's side
    are pushed to `MARGIN`, cheapest first, until the disagreeing ones moved bring z to `goal` or the squared
    distance of the moves reaches `budget`. Coefficients that already agree weakly count for nothing in z, but
    they are cheap and keep later attacks from flipping them."""
    needed = math.ceil((goal * math.sqrt(agreement.size) - np.sum(np.sign(agreement))) / 2)  # each flip adds 2
    candidates = np.flatnonzero(agreement < MARGIN)
    cost = np.square(MARGIN - agreement[candidates])
    order = np.argsort(cost, kind="stable")
    candidates, cost = candidates[order], cost[order]
    flips = agreement[candidates] <= 0
    wanted = ~flips | (np.cumsum(flips) <= needed)
    candidates, cost = candidates[wanted], cost[wanted]
    push = np.zeros(agreement.size, bool)
    push[candidates[np.cumsum(cost) <= budget]] = True
    return np.where(push, MARGIN - agreement, 0.0)


def embed(image: np.ndarray, key: str = DEFAULT_KEY, min_psnr: float = MIN_PSNR) -> np.ndarray:
    """`image` (uint8 HW, HW1, HW3 or HW4) with the mark of `key`, within a distortion of `min_psnr` dB.

    An image whose budget cannot reach `TARGET_Z` gets the strongest mark the budget allows (often still
    detected); `detect` on the result tells."""
    height, width = image.shape[:2]
    allowed = image.size * (255.0 * 10.0 ** (-min_psnr / 20.0)) ** 2  # squared error over every sample
    # The same budget in the orthonormal DCT of one channel, less what rounding to integers adds (1/12 a pixel)
    # and a little slack for its spread.
    budget = 0.97 * height * width * ((255.0 * 10.0 ** (-min_psnr / 20.0)) ** 2 - 1.0 / 12.0)
    coefficients, indices, agreement = _agreement(image, key)
    signs = key_signs(key, height, width).flat[indices]
    change = np.zeros_like(coefficients)
    marked, goal, share = image, TARGET_Z, 1.0
    for round_index in range(_EMBED_ROUNDS):
        trial_change = change.copy()
        spent = float(np.sum(np.square(luma(marked) - luma(image))))  # what clipping left of the change so far
        trial_change.flat[indices] += signs * _moves(agreement, goal, share * (budget - spent))
        trial = _apply(image, scipy.fft.idctn(trial_change, norm="ortho"))
        if round_index and _squared_error(image, trial) > allowed:  # re-pushed coefficients cost more than counted
            share /= 2
            continue
        change, marked = trial_change, trial
        agreement = _agreement(marked, key)[2]
        reached = _z(agreement)
        if reached >= TARGET_Z:
            break
        goal += TARGET_Z - reached
    return marked


def _apply(image: np.ndarray, luma_change: np.ndarray) -> np.ndarray:
    """`image` with `luma_change` added to each colour channel (alpha kept), rounded and clipped to uint8."""
    change = luma_change if image.ndim == 2 else luma_change[..., None] * _CHANNELS_MOVED[image.shape[-1]]
    return np.clip(np.round(image.astype(np.float64) + change), 0, 255).astype(np.uint8)


def _squared_error(reference: np.ndarray, image: np.ndarray) -> float:
    return float(np.sum(np.square(reference.astype(np.float64) - image.astype(np.float64))))


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio of uint8 `image` against `reference`, in dB (inf when equal)."""
    error = _squared_error(reference, image) / reference.size
    return math.inf if error == 0 else 10.0 * math.log10(255.0**2 / error)
