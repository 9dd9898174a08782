"""Experiments that reproduce figures of the docs: ``python -m rnntrain.experiments.NAME --out FILE.png``."""
