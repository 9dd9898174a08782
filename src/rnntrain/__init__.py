"""rnntrain: train recurrent neural networks with every family of training algorithm.

Python quickstart::

    import rnntrain
    config = rnntrain.load_config(overrides=["model.cell='lstm'", "train.epochs=20"])
    result = rnntrain.train(config, "runs/sine-lstm")       # writes a run directory
    print(result.summary["metrics"]["val"])
    rnntrain.forecast("runs/sine-lstm", steps=50)            # recursive forecast

The layers (see ARCHITECTURE.md): ``core`` (cells and ``Recurrent``), ``models``
(encoder -> core -> readout), ``tasks`` (data, loss, metrics), ``algorithms`` (one
protocol, many training algorithms), ``optim``, ``training`` (trainer, run
directories, checkpoints), ``config``, ``cli``.
"""
__version__ = "0.1.0"

_LAZY = {
    "Recurrent": ("core", "Recurrent"),
    "train": ("training", "train"), "resume": ("training", "resume"),
    "load_run": ("training", "load_run"), "Trainer": ("training", "Trainer"),
    "load_config": ("config.run", "load_config"), "RunConfig": ("config.run", "RunConfig"),
    "SequenceModel": ("models", "SequenceModel"), "build_model": ("models", "build_model"),
    "forecast": ("api", "forecast"), "sample": ("api", "sample"),
    "generate": ("api", "generate"), "predict": ("api", "predict"), "translate": ("api", "translate"),
    "UserError": ("errors", "UserError"), "export": ("exporting", "export"),
    "tune": ("training.tune", "tune"), "raw_config": ("config.run", "raw_config"),
    "compare": ("reporting.compare", "compare"), "run_report": ("reporting.compare", "run_report"),
}


def __getattr__(name):
    # Lazy, so that `import rnntrain` imports no torch until something needs it (the CLI's
    # `rnntrain --help` answers in a tenth of a second).
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'rnntrain' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
