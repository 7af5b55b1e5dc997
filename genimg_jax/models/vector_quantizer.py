"""The codebook of a VQ-VAE (van den Oord et al. 2017), updated by exponential moving averages (their appendix A.1;
Razavi et al. 2019), with restarts of dead codes (Dhariwal et al. 2020, Jukebox; Zeghidour et al. 2021).

Pure functions over a `Codebook` pytree: it is train state, not parameters (no gradient reaches it).
- `nearest_codes`: the index of the closest code (squared Euclidean distance) of every encoder vector.
- `straight_through`: the decoder sees the codes, the encoder gets the decoder's gradient as if it had not been
  quantized: z + stop_gradient(code - z).
- `ema_update`: cluster sizes N_k and sums m_k decay by `decay` towards this batch's counts and sums of the vectors
  assigned to k; each code becomes m_k / N~_k with N~ the Laplace-smoothed sizes (eps / K pseudo-count per code,
  renormalised to the same total), so a code nobody picks does not divide by zero.
- `restart_dead_codes`: codes whose N_k fell below `threshold` jump to encoder vectors of this batch (chosen at
  random), with N_k = 1 and m_k = that vector, so the codebook keeps being used.
"""

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Codebook:
    embedding: jax.Array  # (K, D): the codes
    cluster_size: jax.Array  # (K,): EMA of how many vectors picked each code
    embedding_sum: jax.Array  # (K, D): EMA of the sum of the vectors that picked each code


def init_codebook(rng: jax.Array, num_codes: int, dim: int) -> Codebook:
    """Codes from N(0, 1): the scale of encoder outputs at initialisation, so every code is some vector's nearest."""
    embedding = jax.random.normal(rng, (num_codes, dim))
    return Codebook(embedding, jnp.ones((num_codes,)), embedding)


def nearest_codes(vectors: jax.Array, embedding: jax.Array) -> jax.Array:
    """Index (...,) of the nearest code of each vector (..., D), by squared distance |v|^2 - 2 v.e + |e|^2."""
    distances = jnp.sum(embedding**2, axis=-1) - 2.0 * vectors @ embedding.T  # |v|^2 is the same for every code
    return jnp.argmin(distances, axis=-1)


def straight_through(vectors: jax.Array, quantized: jax.Array) -> jax.Array:
    """`quantized` forwards; gradients pass to `vectors` unchanged."""
    return vectors + jax.lax.stop_gradient(quantized - vectors)


def ema_update(codebook: Codebook, vectors: jax.Array, indices: jax.Array, decay: float, eps: float) -> Codebook:
    """The codebook after one batch of `vectors` (M, D) assigned to `indices` (M,)."""
    num_codes = codebook.embedding.shape[0]
    one_hot = jax.nn.one_hot(indices, num_codes, dtype=vectors.dtype)  # (M, K)
    cluster_size = decay * codebook.cluster_size + (1.0 - decay) * jnp.sum(one_hot, axis=0)
    embedding_sum = decay * codebook.embedding_sum + (1.0 - decay) * one_hot.T @ vectors
    total = jnp.sum(cluster_size)
    smoothed = (cluster_size + eps) / (total + num_codes * eps) * total
    return Codebook(embedding_sum / smoothed[:, None], cluster_size, embedding_sum)


def restart_dead_codes(
    codebook: Codebook, vectors: jax.Array, rng: jax.Array, threshold: float
) -> tuple[Codebook, jax.Array]:
    """(codebook with every code of cluster size < `threshold` moved to a random row of `vectors` (M, D), how many
    moved). Computed for every code and selected, with no branch: a restart costs the same as none."""
    num_codes = codebook.embedding.shape[0]
    dead = codebook.cluster_size < threshold
    replacements = vectors[jax.random.randint(rng, (num_codes,), 0, vectors.shape[0])]
    embedding = jnp.where(dead[:, None], replacements, codebook.embedding)
    cluster_size = jnp.where(dead, 1.0, codebook.cluster_size)
    embedding_sum = jnp.where(dead[:, None], replacements, codebook.embedding_sum)
    return Codebook(embedding, cluster_size, embedding_sum), jnp.sum(dead)


def perplexity(indices: jax.Array, num_codes: int) -> jax.Array:
    """exp(entropy) of the codes' frequencies in `indices`: K when all K codes are used equally, 1 for one code."""
    frequencies = jnp.mean(jax.nn.one_hot(indices.reshape(-1), num_codes), axis=0)
    return jnp.exp(-jnp.sum(frequencies * jnp.log(jnp.maximum(frequencies, 1e-12))))
