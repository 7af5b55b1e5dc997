"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), mean ± std over splits."""

import numpy as np
import scipy.special


def inception_score(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) over `num_splits` consecutive splits of the samples, as the original implementation does."""
    if len(logits) < num_splits:
        raise ValueError(
            f"Inception Score with {num_splits} splits needs at least that many samples, got {len(logits)}"
        )
    log_probs = scipy.special.log_softmax(np.asarray(logits, np.float64), axis=-1)
    scores = []
    for part in np.array_split(log_probs, num_splits):
        log_marginal = scipy.special.logsumexp(part, axis=0) - np.log(len(part))
        kl = np.sum(np.exp(part) * (part - log_marginal), axis=-1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
