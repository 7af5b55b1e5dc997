"""Commands other than `genimg_jax.main`, each run as `python -m genimg_jax.tools.NAME`."""
