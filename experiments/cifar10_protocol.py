"""The evaluation every CIFAR-10 paper-table study uses: the configs' own (`genimg_jax.config.CIFAR10_EVAL`: FID
and IS with pytorch-fid's Inception weights, 50k samples against the 50k training images), once at the end of
training (an `eval.every` larger than any run) so that a table costs one evaluation per run."""

from genimg_jax.config import CIFAR10_EVAL as PAPER_EVALUATION

CIFAR10_EVAL = {f"eval.{key}": value for key, value in PAPER_EVALUATION.items()} | {"eval.every": 10**9}
METRICS = ("fid", "is_mean")
SEEDS = (0, 1, 2)
