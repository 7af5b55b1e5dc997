"""experiments/guidance_tradeoff.py: each guidance scale is evaluated with its own w, and the table and the plot
carry one point per scale."""

import numpy as np

from experiments import guidance_tradeoff


class _Evaluator:
    """Stands in for SampleEvaluator: FID rises and agreement saturates with w, as guided samples do."""

    def __init__(self, config, run, workdir):
        self.scale = config.sample.guidance_scale
        assert config.eval.metrics == "fid,caption_agreement"

    def evaluate(self, state):
        return {"fid": 10 + self.scale**2, "digit_agreement": 1 - np.exp(-1 - self.scale)}

    def protocol(self):
        return {"num_samples": 64}


def test_each_scale_is_evaluated_at_its_own_guidance(monkeypatch):
    seen = []

    def restore_latest(config, workdir):
        seen.append((config.sample.guidance_scale, config.eval.num_samples, workdir))
        return None, None, 1200

    monkeypatch.setattr(guidance_tradeoff, "restore_latest", restore_latest)
    monkeypatch.setattr(guidance_tradeoff, "SampleEvaluator", _Evaluator)
    step, values, protocol = guidance_tradeoff.evaluate_scales(
        "configs/text_diffusion.py:digits16", "W", [-1.0, 0.0, 2.0], "fid,caption_agreement", ["eval.num_samples=64"]
    )
    assert step == 1200 and protocol == {"num_samples": 64}
    assert seen == [(-1.0, 64, "W"), (0.0, 64, "W"), (2.0, 64, "W")]
    assert [values[w]["fid"] for w in (-1.0, 0.0, 2.0)] == [11.0, 10.0, 14.0]
    rows = guidance_tradeoff.markdown(values, ["digit_agreement", "fid"]).splitlines()
    assert rows[0] == "| w | digit_agreement | fid |"
    assert rows[2:] == ["| -1 | 0 | 11 |", "| 0 | 0.6321 | 10 |", "| 2 | 0.9502 | 14 |"]
    picture = np.asarray(guidance_tradeoff.tradeoff_chart(values, "digit_agreement", "fid", "t"))
    assert picture.ndim == 3 and (picture < 128).any()  # drawn, not blank
