"""CycleGAN's history of generated images (Shrivastava et al. 2017; junyanz/pytorch-CycleGAN-and-pix2pix
`ImagePool`), as a jittable pytree kept in the train state: the discriminator sees a mix of the newest fakes and
older ones, which damps the oscillation of the two players.

Images are queried one at a time, in batch order: while the pool is not full, an image is stored and returned
as it is; once full, with probability 1/2 a uniformly chosen stored image is returned and replaced by the new
one, else the new image is returned and the pool is left unchanged. A pool of size 0 returns its input.
"""

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class ImagePool:
    images: jax.Array  # (size, H, W, C); the first `count` slots hold images
    count: jax.Array  # int32: how many slots are filled


def empty_pool(size: int, image_shape: tuple[int, ...]) -> ImagePool:
    """A pool for `size` images of `image_shape` (H, W, C), float32."""
    return ImagePool(images=jnp.zeros((size, *image_shape), jnp.float32), count=jnp.zeros((), jnp.int32))


def query_pool(pool: ImagePool, images: jax.Array, rng: jax.Array) -> tuple[ImagePool, jax.Array]:
    """The updated pool and the images to show the discriminator in place of `images` (N, H, W, C)."""
    size = pool.images.shape[0]
    if size == 0:
        return pool, images

    def one(carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array]):
        stored, count = carry
        image, key = inputs
        swap_key, index_key = jax.random.split(key)
        full = count >= size
        swap = full & (jax.random.uniform(swap_key) < 0.5)
        index = jnp.where(full, jax.random.randint(index_key, (), 0, size), jnp.minimum(count, size - 1))
        returned = jnp.where(swap, stored[index], image)
        written = jnp.where(full & ~swap, stored[index], image)
        stored = stored.at[index].set(written.astype(stored.dtype))
        return (stored, jnp.minimum(count + 1, size)), returned

    keys = jax.random.split(rng, images.shape[0])
    (stored, count), returned = jax.lax.scan(one, (pool.images, pool.count), (images, keys))
    return ImagePool(images=stored, count=count), returned.astype(images.dtype)
