"""Studies (ablations, paper tables) run by `python -m genimg_jax.experiments`, the published numbers they compare
with (published.py), fault injection, and records of measured runs (records/)."""
