"""Diffusion-model mathematics: noise schedules, EDM preconditioning, samplers and guidance (no network code)."""
