"""The subcommands, their modules and one-line help: light (no torch), so that ``rnntrain
--help`` and a mistyped command answer at once, and a command imports only its own module."""
from __future__ import annotations

# command -> (module of rnntrain.cli that registers it, its one-line help)
COMMANDS = {
    "train": ("train", "train a model; with no arguments, the seed sine example"),
    "forecast": ("infer", "recursive forecast from a trained forecasting run"),
    "predict": ("infer", "label the sequences of a file with a classify/regress/tag/transcribe run, "
                         "or decode each line with a seq2seq run"),
    "translate": ("infer", "decode one input with a seq2seq run"),
    "sample": ("infer", "sample text from a trained text run"),
    "generate": ("generate", "closed-loop generation (outputs fed back, state carried) from a "
                             "forecasting run, e.g. an echo state network"),
    "analyze": ("analyze", "gradient flow or learned dynamics of a run"),
    "gradcheck": ("gradcheck", "check an online algorithm's gradient in float64"),
    "backtest": ("backtest", "rolling-origin evaluation of a forecasting run or config: errors per "
                             "fold against the baselines"),
    "compare": ("compare", "runs side by side: one table (final metrics, baselines, time, work) and "
                           "curves, as compare.html (self-contained) and compare.md"),
    "export": ("export", "the model of a run as ONNX or TorchScript (whole sequences, and one step with "
                         "the state in and out), checked against rnntrain's outputs"),
    "tune": ("tune", "hyperparameter search on Optuna over any config key (--param KEY=SPEC), with "
                     "pruning and an optional shared storage (--storage sqlite:///study.db)"),
    "report": ("compare", "rewrite a run's report.html (e.g. after rnntrain analyze)"),
}


def help_of(command: str) -> str:
    return COMMANDS[command][1]
