"""The evaluation every CIFAR-10 paper-table study uses: FID and IS with pytorch-fid's Inception weights, 50k
samples against the 50k training images, once at the end of training (an `eval.every` larger than any run)."""

CIFAR10_EVAL = {
    "eval.every": 10**9,
    "eval.metrics": "fid,is",
    "eval.feature_net": "inception",
    "eval.num_samples": 50_000,
    "eval.reference_split": "train",
}
METRICS = ("fid", "is_mean")
SEEDS = (0, 1, 2)
