"""The trainer's own cost per round, against the round's work: a genetic algorithm of 50
networks of 16 units on the seed's sine (a generation is short, so per-round costs show).

Timed inside one process around ``Trainer.fit``: the algorithm's rounds (``run_round``), the
validation evaluations, and the rest of the loop (history, early stopping, monitors,
checkpoints, metrics.csv, progress); ``finish`` (final evaluation, plots, summary) apart.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import rnntrain
from rnntrain.training.run_dir import RunDir
from rnntrain.training.trainer import Trainer


def measure(generations: int, **keys) -> dict:
    config = rnntrain.load_config(base={"algorithm.name": "ga", "algorithm.population": 50, "model.hidden": 16,
                                        "train.epochs": generations, **keys})
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, Path(tmp) / "run")
        spent = {"round": 0.0, "val": 0.0, "finish": 0.0}

        def timed(name, fn):
            def wrapper(*a, **k):
                start = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    spent[name] += time.perf_counter() - start
            return wrapper

        trainer.algorithm.run_round = timed("round", trainer.algorithm.run_round)
        trainer.task.evaluate = timed("val", trainer.task.evaluate)
        trainer.finish = timed("finish", trainer.finish)
        run = RunDir(trainer.run.path)
        with run.locked():
            run.create(config)
            start = time.perf_counter()
            trainer.fit()
            total = time.perf_counter() - start
    loop = total - spent["finish"] - spent["round"] - spent["val"]
    return {"generation_ms": spent["round"] / generations * 1e3, "val_ms": spent["val"] / generations * 1e3,
            "overhead_ms": loop / generations * 1e3, "overhead_pct": loop / spent["round"] * 100,
            "val_pct": spent["val"] / spent["round"] * 100}


def run(quick: bool = False) -> str:
    n = 60 if quick else 300
    lines = [f"GA, population 50, 16 units, {n} generations, in one process; per generation.", "",
             "| setting | generation | validation | trainer's own | own / generation | validation / generation |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, keys in (("defaults", {}), ("train.eval_every = 10", {"train.eval_every": 10}),
                        ("checkpoint every round (checkpoint_every = 0)", {"train.checkpoint_every": 0})):
        m = measure(n, **keys)
        lines.append(f"| {label} | {m['generation_ms']:.1f} ms | {m['val_ms']:.2f} ms | {m['overhead_ms']:.2f} ms | "
                     f"{m['overhead_pct']:.1f}% | {m['val_pct']:.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
