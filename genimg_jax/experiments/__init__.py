"""Studies (ablations and paper tables) over configs: `python -m genimg_jax.experiments run|table STUDY.py`.

Study files live in the repository's `experiments/` folder and are loaded by path; they build a `Study` from
`genimg_jax.experiments.study`.
"""

from genimg_jax.experiments.study import Cell, Published, Study

__all__ = ["Cell", "Published", "Study"]
