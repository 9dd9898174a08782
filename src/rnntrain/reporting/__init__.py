"""Plots of a run (PNG, matplotlib's Agg backend: no display needed)."""
