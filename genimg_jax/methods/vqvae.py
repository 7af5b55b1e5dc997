"""VQ-VAE (van den Oord et al. 2017) with an EMA codebook and dead-code restarts, and an autoregressive prior over
its code map (a causal transformer, optionally class-conditional): sampling draws a code map from the prior, code
by code, and decodes it.

Training minimises |x - D(q(E(x)))|^2 + beta |E(x) - sg(q(E(x)))|^2 through the straight-through estimator; the
codebook follows the encoder outputs by EMA (models/vector_quantizer.py), and codes whose EMA cluster size fell
below `model.restart_threshold` restart at encoder outputs of the batch. Logged per step: reconstruction MSE,
commitment, the prior's cross-entropy, the batch's code perplexity and the fraction of codes used, and how many
codes restarted. Evaluation reports, per held-out image, the reconstruction MSE and PSNR (data range 2, pixels in
[-1, 1]) and the prior's exact negative log-likelihood of the image's code map in nats and bits per code.

Deliberate deviation: the paper trains the prior (a PixelCNN) after the VQ-VAE, on the codes of the finished
encoder. Here the prior trains in the same steps on the current codes (stop-gradient: it never moves the encoder
or the codebook), so one run yields a sampler; it chases a moving target until the codebook settles, and its NLL
is of the final codes.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genimg_jax import data
from genimg_jax.config import adam_config, base_config, require
from genimg_jax.methods.base import Batch, Metrics, adam, class_conditioning, sample_labels
from genimg_jax.models import vector_quantizer as vq
from genimg_jax.models.code_prior import CodePrior
from genimg_jax.models.vqvae import VQDecoder, VQEncoder

DOWNSAMPLING = 4  # the code map is at 1/4 of the image resolution


def vqvae_config() -> ml_collections.ConfigDict:
    """`base_config()` with every VQ-VAE key at its default."""
    config = base_config()
    config.method = "vqvae"
    config.model = ml_collections.ConfigDict(
        {
            "features": 64,  # channels of the encoder and decoder
            "residual_blocks": 2,
            "num_codes": 128,  # K
            "code_dim": 32,  # D
            "commitment": 0.25,  # beta
            "ema_decay": 0.99,
            "ema_eps": 1e-5,
            "restart_threshold": 1.0,  # EMA cluster size below which a code restarts (0 disables)
            "num_classes": 0,  # > 0: a class-conditional prior
            "prior_width": 128,
            "prior_depth": 4,
            "prior_heads": 4,
            "temperature": 1.0,  # of the prior's sampling
        }
    )
    config.optim = ml_collections.ConfigDict({"vqvae": adam_config(2e-4), "prior": adam_config(3e-4)})
    return config


@flax.struct.dataclass
class VQVAEState:
    step: jax.Array
    rng: jax.Array
    params: Any  # {"encoder", "decoder", "prior"}
    codebook: vq.Codebook
    opt_state: Any  # of the encoder and decoder
    prior_opt_state: Any


class VQVAE:
    """VQ-VAE + code prior as pure functions over `VQVAEState`."""

    KEY_METRICS = ("reconstruction_mse", "prior_nll", "perplexity")

    def __init__(self, config: ml_collections.ConfigDict):
        model = config.model
        resolution = config.data.resolution
        require(resolution % DOWNSAMPLING == 0, "data.resolution", resolution, "must be a multiple of 4")
        require(model.num_codes >= 2, "model.num_codes", model.num_codes, "must be >= 2")
        require(0.0 < model.ema_decay < 1.0, "model.ema_decay", model.ema_decay, "must be in (0, 1)")
        require(model.temperature > 0, "model.temperature", model.temperature, "must be positive")
        require(model.features % 2 == 0, "model.features", model.features, "must be even")
        self.config = config
        self.code_shape = (resolution // DOWNSAMPLING, resolution // DOWNSAMPLING)
        self.length = self.code_shape[0] * self.code_shape[1]
        self.encoder = VQEncoder(model.features, model.code_dim, model.residual_blocks)
        self.decoder = VQDecoder(model.features, config.data.channels, model.residual_blocks)
        self.prior = CodePrior(
            model.num_codes, self.length, model.prior_width, model.prior_depth, model.prior_heads, model.num_classes
        )
        self.optimizer = adam(config.optim.vqvae, "optim.vqvae")
        self.prior_optimizer = adam(config.optim.prior, "optim.prior")

    def conditioning_fields(self) -> tuple[str, ...]:
        return class_conditioning(self.config.model.num_classes)

    def _labels(self, batch: Batch) -> jax.Array | None:
        return batch["label"] if self.config.model.num_classes else None

    def init_state(self, rng: jax.Array, example_batch: Batch) -> VQVAEState:
        model = self.config.model
        enc_rng, dec_rng, prior_rng, code_rng, state_rng = jax.random.split(rng, 5)
        images = data.to_unit_range(example_batch["image"])
        vectors = jnp.zeros((images.shape[0], *self.code_shape, model.code_dim))
        codes = jnp.zeros((images.shape[0], self.length), jnp.int32)
        labels = jnp.zeros((images.shape[0],), jnp.int32) if model.num_classes else None
        autoencoder = {
            "encoder": self.encoder.init(enc_rng, images)["params"],
            "decoder": self.decoder.init(dec_rng, vectors)["params"],
        }
        prior = self.prior.init(prior_rng, codes, labels)["params"]
        return VQVAEState(
            step=jnp.zeros((), jnp.int32),
            rng=state_rng,
            params={**autoencoder, "prior": prior},
            codebook=vq.init_codebook(code_rng, model.num_codes, model.code_dim),
            opt_state=self.optimizer.init(autoencoder),
            prior_opt_state=self.prior_optimizer.init(prior),
        )

    def encode(self, params: Any, codebook: vq.Codebook, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(encoder vectors (N, h, w, D), their codes (N, h, w))."""
        vectors = self.encoder.apply({"params": params["encoder"]}, images)
        return vectors, vq.nearest_codes(vectors, codebook.embedding)

    def decode_codes(self, params: Any, codebook: vq.Codebook, codes: jax.Array) -> jax.Array:
        """Images in [-1, 1] of code maps (N, h, w)."""
        decoded = self.decoder.apply({"params": params["decoder"]}, codebook.embedding[codes])
        return jnp.clip(decoded, -1.0, 1.0)

    # As latent diffusion's first stage (`methods.latent_diffusion.Autoencoder`), LDM's VQ-regularised one
    # (`VQModelInterface`): latents are the continuous encoder output before quantisation; decoding quantises
    # them to their nearest codes first (its `decode` with force_not_quantize=False).
    def latent_params(self, state: VQVAEState) -> Any:
        return {"encoder": state.params["encoder"], "decoder": state.params["decoder"], "codebook": state.codebook}

    def encode_latents(self, params: Any, images: jax.Array) -> jax.Array:
        """The encoder vectors (N, h, w, code_dim) of uint8 `images`, not quantised."""
        return self.encoder.apply({"params": params["encoder"]}, data.to_unit_range(images))

    def decode_latents(self, params: Any, vectors: jax.Array) -> jax.Array:
        codebook = params["codebook"]
        return self.decode_codes(params, codebook, vq.nearest_codes(vectors, codebook.embedding))

    def prior_nll(self, prior_params: Any, codes: jax.Array, labels: jax.Array | None) -> jax.Array:
        """-log p(code map) per example (N,), in nats, of code maps (N, h, w)."""
        flat = codes.reshape(codes.shape[0], -1)
        logits = self.prior.apply({"params": prior_params}, flat, labels)
        return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, flat), axis=-1)

    def train_step(self, state: VQVAEState, batch: Batch) -> tuple[VQVAEState, Metrics]:
        model = self.config.model
        images = data.to_unit_range(batch["image"])
        labels = self._labels(batch)
        codebook = state.codebook

        def autoencoder_loss(autoencoder):
            vectors, codes = self.encode(autoencoder, codebook, images)
            quantized = codebook.embedding[codes]
            decoded = self.decoder.apply({"params": autoencoder["decoder"]}, vq.straight_through(vectors, quantized))
            reconstruction = jnp.mean((decoded - images) ** 2)
            commitment = jnp.mean((vectors - jax.lax.stop_gradient(quantized)) ** 2)
            loss = reconstruction + model.commitment * commitment
            return loss, (vectors, codes, reconstruction, commitment)

        autoencoder = {name: state.params[name] for name in ("encoder", "decoder")}
        (loss, (vectors, codes, reconstruction, commitment)), grads = jax.value_and_grad(
            autoencoder_loss, has_aux=True
        )(autoencoder)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, autoencoder)
        autoencoder = optax.apply_updates(autoencoder, updates)

        def prior_loss(prior_params):
            return jnp.mean(self.prior_nll(prior_params, codes, labels)) / self.length

        prior_nll, prior_grads = jax.value_and_grad(prior_loss)(state.params["prior"])
        prior_updates, prior_opt_state = self.prior_optimizer.update(
            prior_grads, state.prior_opt_state, state.params["prior"]
        )
        prior = optax.apply_updates(state.params["prior"], prior_updates)

        flat_vectors = jax.lax.stop_gradient(vectors).reshape(-1, model.code_dim)
        codebook = vq.ema_update(codebook, flat_vectors, codes.reshape(-1), model.ema_decay, model.ema_eps)
        restart_rng = jax.random.fold_in(state.rng, state.step)
        codebook, restarted = vq.restart_dead_codes(codebook, flat_vectors, restart_rng, model.restart_threshold)
        used = jnp.mean(jnp.any(jax.nn.one_hot(codes.reshape(-1), model.num_codes) > 0, axis=0))
        new_state = state.replace(
            step=state.step + 1,
            params={**autoencoder, "prior": prior},
            codebook=codebook,
            opt_state=opt_state,
            prior_opt_state=prior_opt_state,
        )
        return new_state, {
            "loss": loss,
            "reconstruction_mse": reconstruction,
            "commitment": commitment,
            "prior_nll": prior_nll,  # nats per code
            "perplexity": vq.perplexity(codes, model.num_codes),
            "codebook_usage": used,
            "restarted_codes": restarted.astype(jnp.float32),
            "grad_norm": optax.tree.norm(grads),
        }

    def sample(self, state: VQVAEState, rng: jax.Array, num: int, conditioning: Batch | None = None) -> jax.Array:
        """Code maps drawn from the prior one code at a time (a full causal pass per code), then decoded."""
        labels = sample_labels(conditioning, num, self.config.model.num_classes)
        temperature = self.config.model.temperature

        def draw(index, codes):
            logits = self.prior.apply({"params": state.params["prior"]}, codes, labels)[:, index]
            drawn = jax.random.categorical(jax.random.fold_in(rng, index), logits / temperature)
            return codes.at[:, index].set(drawn)

        codes = jax.lax.fori_loop(0, self.length, draw, jnp.zeros((num, self.length), jnp.int32))
        return self.decode_codes(state.params, state.codebook, codes.reshape(num, *self.code_shape))

    def evaluate_batch(self, state: VQVAEState, batch: Batch, rng: jax.Array) -> Metrics:
        """Per example: reconstruction MSE and PSNR, and the prior's NLL of the code map (nats, bits per code)."""
        del rng  # deterministic: nearest codes, exact prior likelihood
        images = data.to_unit_range(batch["image"])
        _, codes = self.encode(state.params, state.codebook, images)
        reconstructed = self.decode_codes(state.params, state.codebook, codes)
        mse = jnp.mean((reconstructed - images) ** 2, axis=(1, 2, 3))
        nll = self.prior_nll(state.params["prior"], codes, self._labels(batch))
        return {
            "reconstruction_mse": mse,
            "psnr": 10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-12)),
            "code_nll_nats": nll,
            "bits_per_code": nll / (self.length * jnp.log(2.0)),
        }
