"""Text-to-image diffusion: padding changes nothing, the U-Net without a caption is the plain one, cross-attention
is masked softmax attention, guidance combines the caption's and the null caption's predictions, captions are
dropped at the configured rate, and training lowers the loss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from random_states import random_diffusion_state, random_params
from tiny_configs import TINY_UNET, load

from genimg_jax import data
from genimg_jax.config import ConfigError
from genimg_jax.diffusion import guidance
from genimg_jax.methods import build_method
from genimg_jax.methods.text_diffusion import null_caption
from genimg_jax.models import text_encoder, unet

LENGTH, VOCAB = 8, 64
TINY = [
    *TINY_UNET,
    "train.batch_size=4",
    f"data.caption_length={LENGTH}",
    f"model.text.vocab_size={VOCAB}",
    "model.text.features=16",
    "model.text.num_heads=2",
    "sample.guidance_scale=2.0",
]


def _captions(seed: int, lengths=(1, 3, 5, LENGTH)) -> dict:
    """Random captions of the given lengths (BOS first, padding 0 after them)."""
    rng = np.random.default_rng(seed)
    mask = (np.arange(LENGTH)[None] < np.asarray(lengths)[:, None]).astype(np.int32)
    tokens = rng.integers(4, VOCAB, mask.shape).astype(np.int32)
    tokens[:, 0] = 2
    return {"tokens": tokens * mask, "tokens_mask": mask}


def _batch(seed: int) -> dict:
    images = np.random.default_rng(seed).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    return {"image": images, **_captions(seed)}


def _with_padding_content(captions: dict, seed: int) -> dict:
    """The same captions with random tokens where the mask is 0."""
    noise = np.random.default_rng(seed).integers(1, VOCAB, captions["tokens"].shape).astype(np.int32)
    return {**captions, "tokens": np.where(captions["tokens_mask"] == 1, captions["tokens"], noise)}


@pytest.fixture(scope="module")
def tiny():
    method = build_method(load("text_diffusion.py", *TINY))
    return method, random_diffusion_state(method, _batch(0), seed=1)


def test_padding_changes_nothing_in_the_encoder_and_the_network(tiny):
    method, state = tiny
    captions = _captions(2)
    padded = _with_padding_content(captions, 3)
    changed = {**captions, "tokens": captions["tokens"].copy()}
    changed["tokens"][2, 1] = 5 if captions["tokens"][2, 1] != 5 else 6  # a real token of caption 2
    x = jax.random.normal(jax.random.PRNGKey(4), (4, 8, 8, 1))
    t = jnp.full((4,), 300.0)

    @jax.jit
    def outputs(labels):
        encoder = method.network.encoder.apply(
            {"params": state.params["encoder"]}, labels["tokens"], labels["tokens_mask"]
        )
        return encoder, method._network(state.params, x, t, labels, None)

    (features, pooled), eps = outputs(captions)
    (padded_features, padded_pooled), padded_eps = outputs(padded)
    np.testing.assert_array_equal(padded_features, features)
    np.testing.assert_array_equal(padded_pooled, pooled)
    np.testing.assert_array_equal(padded_eps, eps)
    mask = captions["tokens_mask"] == 1
    assert np.all(np.asarray(features)[~mask] == 0.0)
    np.testing.assert_allclose(pooled, np.asarray(features).sum(1) / mask.sum(1, keepdims=True), rtol=1e-5)
    (changed_features, _), changed_eps = outputs(changed)
    assert float(jnp.max(jnp.abs(changed_features[2] - features[2]))) > 1e-3  # a real token does matter
    np.testing.assert_array_equal(changed_features[0], features[0])  # only to its own caption
    assert float(jnp.max(jnp.abs(changed_eps[2] - eps[2]))) > 1e-5


def _unet_params(network: unet.UNet, **context) -> dict:
    x, t = jnp.zeros((2, 8, 8, 1)), jnp.zeros((2,))
    return jax.eval_shape(lambda: network.init(jax.random.PRNGKey(0), x, t, **context))["params"]


def _paths(tree: dict) -> dict[str, tuple]:
    return {jax.tree_util.keystr(path): leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def test_unet_without_context_is_the_plain_unet_and_text_only_adds_to_it(tiny):
    method, _ = tiny
    network = method.network.unet
    context = {"context": jnp.zeros((2, LENGTH, 16)), "context_mask": jnp.ones((2, LENGTH), jnp.int32)}
    plain, text = _paths(_unet_params(network)), _paths(_unet_params(network, **context))
    assert not any("CrossAttention" in path or "pooled" in path for path in plain)
    added = {path for path in text if "CrossAttention" in path or "pooled_context" in path}
    assert {path: text[path] for path in set(text) - added} == plain
    blocks = {path.split("']")[0] for path in added}
    assert len(blocks) == 1 + 2 + 1 + 1  # at 4x4: 1 down block, 2 up blocks, the middle; the pooled map

    # With the text path's outputs zeroed, the conditioned U-Net computes exactly the plain one.
    params = random_params(_unet_params(network, **context), seed=5)
    zeroed = {
        name: jax.tree.map(jnp.zeros_like, value) if name == "pooled_context" else value
        for name, value in params.items()
    }
    for name in zeroed:
        if name.startswith("CrossAttention"):
            attention = dict(zeroed[name]["MultiHeadDotProductAttention_0"])
            attention["out"] = jax.tree.map(jnp.zeros_like, attention["out"])
            zeroed[name] = {**zeroed[name], "MultiHeadDotProductAttention_0": attention}
    plain_params = {name: value for name, value in zeroed.items() if not name.startswith(("Cross", "pooled"))}
    x = jax.random.normal(jax.random.PRNGKey(6), (2, 8, 8, 1))
    t = jnp.asarray([10.0, 700.0])
    context = {
        "context": jax.random.normal(jax.random.PRNGKey(7), (2, LENGTH, 16)),
        "context_mask": context["context_mask"],
    }
    apply = jax.jit(lambda p, c: network.apply({"params": p}, x, t, **c))
    np.testing.assert_allclose(apply(zeroed, context), apply(plain_params, {}), atol=1e-6)
    assert float(jnp.max(jnp.abs(apply(params, context) - apply(plain_params, {})))) > 1e-3


def _group_norm(x: np.ndarray, groups: int, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    grouped = x.reshape(n, h * w, groups, c // groups)
    mean = grouped.mean(axis=(1, 3), keepdims=True)
    var = grouped.var(axis=(1, 3), keepdims=True)
    return ((grouped - mean) / np.sqrt(var + 1e-6)).reshape(n, h, w, c) * scale + bias


def _cross_attention_reference(params: dict, x: np.ndarray, context: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x + softmax(q k^T / sqrt(c), real tokens only) v W_o, single head, in float64."""
    p = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), params)
    attention = p["MultiHeadDotProductAttention_0"]
    n, h, w, c = x.shape
    norm = p["GroupNorm_0"]
    queries = _group_norm(x, math.gcd(32, max(c // 4, 1)), norm["scale"], norm["bias"]).reshape(n, h * w, c)

    def project(inputs, name):
        return inputs @ attention[name]["kernel"][:, 0, :] + attention[name]["bias"][0]

    q, k, v = project(queries, "query"), project(context, "key"), project(context, "value")
    logits = np.einsum("bqc,bkc->bqk", q, k) / math.sqrt(c)
    logits = np.where(mask[:, None, :] == 1, logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bqk,bkc->bqc", weights, v) @ attention["out"]["kernel"][0] + attention["out"]["bias"]
    return x + out.reshape(n, h, w, c)


def test_cross_attention_is_masked_softmax_attention_to_the_real_tokens():
    module = unet.CrossAttention()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 4, 8)).astype(np.float32)
    context = rng.standard_normal((2, 5, 6)).astype(np.float32)
    mask = np.asarray([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]], np.int32)
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, context, mask))["params"]
    params = random_params(shapes, seed=9, scale=0.5)
    out = np.asarray(module.apply({"params": params}, x, context, mask))
    np.testing.assert_allclose(out, _cross_attention_reference(params, x, context, mask), atol=1e-5)
    unmasked = _cross_attention_reference(params, x, context, np.ones_like(mask))
    assert np.max(np.abs(out - unmasked)) > 1e-2  # the mask matters


def test_text_encoder_max_length_is_one_clear_error():
    encoder = text_encoder.TextEncoder(vocab_size=VOCAB, max_length=4, features=8, num_heads=2)
    tokens = jnp.ones((1, 6), jnp.int32)
    with pytest.raises(ValueError, match="exceed the text encoder's max_length=4"):
        jax.eval_shape(lambda: encoder.init(jax.random.PRNGKey(0), tokens, tokens))


def test_guidance_combines_the_caption_and_the_null_caption_in_one_call(tiny):
    method, state = tiny
    captions = _captions(10)
    null = null_caption(captions)
    np.testing.assert_array_equal(null["tokens"], np.tile([2] + [0] * (LENGTH - 1), (4, 1)))
    np.testing.assert_array_equal(null["tokens_mask"], np.tile([1] + [0] * (LENGTH - 1), (4, 1)))

    seen = []

    def recording(x, sigma, labels):  # a denoiser whose output is a function of its labels, recording each call
        seen.append(jax.tree.map(np.asarray, labels))
        return x * jnp.sum(labels["tokens"] * labels["tokens_mask"], axis=1)[:, None, None, None].astype(x.dtype)

    x = jax.random.normal(jax.random.PRNGKey(11), (4, 8, 8, 1))
    conditional, unconditional = recording(x, 1.0, captions), recording(x, 1.0, null)
    seen.clear()
    for scale in (-1.0, 0.0, 0.5, 2.0):
        guided = guidance.guided_by(recording, scale, method.null_labels)(x, 1.0, captions)
        np.testing.assert_allclose(guided, (1 + scale) * conditional - scale * unconditional, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(guidance.guided_by(recording, -1.0, method.null_labels)(x, 1.0, captions), unconditional)
    np.testing.assert_allclose(guidance.guided_by(recording, 0.0, method.null_labels)(x, 1.0, captions), conditional)
    assert len(seen) == 6  # one network call per guided evaluation
    for name in ("tokens", "tokens_mask"):
        np.testing.assert_array_equal(seen[0][name][:4], captions[name])
        np.testing.assert_array_equal(seen[0][name][4:], null[name])

    # The method's own sampling denoiser: guidance before clipping, with the real network.
    sigma = jnp.float32(2.0)
    denoise = method.denoiser(state.ema_params)
    guided_denoise = method.sampling_denoiser(state.ema_params, guided=True)
    both = jax.jit(lambda: (denoise(x, sigma, captions), denoise(x, sigma, null), guided_denoise(x, sigma, captions)))
    conditional, unconditional, guided = both()
    expected = np.clip(3.0 * conditional - 2.0 * unconditional, -1.0, 1.0)
    np.testing.assert_allclose(guided, expected, atol=1e-5)
    assert float(jnp.max(jnp.abs(conditional - unconditional))) > 1e-4


@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_captions_are_dropped_to_the_null_caption_at_the_configured_rate(rate):
    method = build_method(load("text_diffusion.py", *TINY, f"model.text.drop_rate={rate}"))
    num = 4000
    captions = _captions(12, lengths=np.random.default_rng(13).integers(2, LENGTH + 1, num))
    dropped = jax.tree.map(np.asarray, method.drop_labels(jax.random.PRNGKey(14), captions))
    null = jax.tree.map(np.asarray, null_caption(captions))
    is_null = np.all(dropped["tokens"] == null["tokens"], axis=1) & np.all(
        dropped["tokens_mask"] == null["tokens_mask"], axis=1
    )
    assert abs(is_null.mean() - rate) < 4 * math.sqrt(rate * (1 - rate) / num)
    for name in ("tokens", "tokens_mask"):
        np.testing.assert_array_equal(dropped[name][~is_null], captions[name][~is_null])


def test_samples_have_the_data_shape_and_range_and_follow_the_caption(tiny):
    method, state = tiny
    assert method.conditioning_fields() == ("tokens", "tokens_mask")
    sample = jax.jit(lambda s, c: method.sample(s, jax.random.PRNGKey(15), 4, c))
    first, second = np.asarray(sample(state, _captions(16))), np.asarray(sample(state, _captions(17)))
    assert first.shape == (4, 8, 8, 1)
    assert np.all(np.isfinite(first)) and first.min() >= -1.0 and first.max() <= 1.0
    assert np.max(np.abs(first - second)) > 1e-3
    with pytest.raises(ConfigError, match="text diffusion samples from captions"):
        method.sample(state, jax.random.PRNGKey(15), 4, None)


def test_shipped_config_fits_its_captioned_source():
    config = load("text_diffusion.py")
    assert config.model.text.vocab_size == len(data.vocabulary_for(config.data))
    fields = data.fields_from_config(config.data)
    assert fields["tokens"].shape == fields["tokens_mask"].shape == (config.data.caption_length,)
    assert build_method(config).conditioning_fields() == ("tokens", "tokens_mask")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.text.num_heads=3", "model.text.num_heads"),
        ("model.network=ddpmpp", "model.network"),
        ("sample.repaint=true", "sample.repaint"),
    ],
)
def test_bad_text_config_is_one_clear_error(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_method(load("text_diffusion.py", *TINY, override))


@pytest.mark.slow
def test_short_training_lowers_the_loss():
    """Four fixed caption -> image pairs: the step's loss falls by a fifth within 40 steps."""
    method = build_method(load("text_diffusion.py", *TINY, "optim.denoiser.learning_rate=2e-3"))
    batch = _batch(18)
    state = jax.jit(method.init_state)(jax.random.PRNGKey(0), batch)
    initial_encoder = state.params["encoder"]
    step = jax.jit(method.train_step)
    losses = []
    for _ in range(40):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    for params in (state.params, state.ema_params):  # the encoder is trained and EMA'd with the U-Net
        change = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), params["encoder"], initial_encoder)
        assert min(jax.tree.leaves(change)) > 0.0
