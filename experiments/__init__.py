"""Sweeps and paper-table reproductions built from configs (`python -m experiments.sweep`)."""
