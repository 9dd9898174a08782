r"""Three ways to forecast H steps ahead, on the same series and the same windows.

- **recursive** (the seed's): a horizon-1 network, its prediction fed back as the next
  input H times;
- **direct**: one readout emits all H values at once (``task.horizon = H``);
- **decoder**: an encoder-decoder emits them one at a time, each fed back to the decoder
  (``task.decoder = true``, models/seq2seq.py), trained teacher-forced or with scheduled
  sampling (``task.sampling.schedule = "inverse-sigmoid"``, k = 5).

Every strategy trains with the same cell, width, optimiser and epochs, and is scored on the
validation windows of the horizon-H task (the same inputs for all three) by the NRMSE over
all H steps and at the first and last step; mean ± std over seeds::

    python -m rnntrain.experiments.multistep --series mackey-glass --horizon 10 --seeds 0-2
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Dict, List

import numpy as np
import torch

import rnntrain
from rnntrain.tasks.base import evaluating
from rnntrain.training.build import make_task

STRATEGIES = {"recursive": {"task.horizon": 1}, "direct": {}, "decoder": {"task.decoder": True},
              "decoder, scheduled sampling": {"task.decoder": True, "task.sampling.schedule": "inverse-sigmoid"}}


def nrmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """RMSE over std of the truth, averaged over target columns; arrays (N, ..., C)."""
    c = truth.shape[-1]
    p, t = pred.reshape(-1, c), truth.reshape(-1, c)
    return float(np.mean(np.sqrt(((p - t) ** 2).mean(0)) / t.std(0)))


def recursive_windows(task, model, x: torch.Tensor, steps: int) -> torch.Tensor:
    """A horizon-1 forecasting model rolled ``steps`` times over every window of x
    (N, W, n_inputs) at once: (N, steps, n_outputs), scaled units."""
    task.require_feedback()
    preds = []
    cur = x
    with evaluating(model):
        for _ in range(steps):
            p = task.predict_windows(model, cur)  # (N, n_outputs)
            preds.append(p)
            row = cur[:, -1].clone()
            row[:, task.out_in_pos] = p
            cur = torch.cat([cur[:, 1:], row[:, None]], 1)
    return torch.stack(preds, 1)


def run(series: str, horizon: int, seed: int, settings: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    common = {"task.series": series, "task.horizon": horizon, "seed": seed, **settings}
    reference = make_task(rnntrain.load_config(base=common))  # the horizon-H windows all are scored on
    w = reference._windows["val"]
    for name, extra in STRATEGIES.items():
        t0 = time.perf_counter()
        result = rnntrain.train(rnntrain.load_config(base={**common, **extra}))
        seconds = time.perf_counter() - t0
        task = result.task
        if name == "recursive":
            z = recursive_windows(task, result.model, w.x, horizon)
        else:
            z = task._predict(result.model, w.x)[0.5].reshape(len(w.x), horizon, -1)
        pred = reference.to_data_units(z)
        truth = w.raw_y  # (N, H, C)
        rows.append({"strategy": name, "seed": seed, "nrmse": nrmse(pred, truth),
                     "nrmse_first": nrmse(pred[:, 0], truth[:, 0]), "nrmse_last": nrmse(pred[:, -1], truth[:, -1]),
                     "parameters": result.summary["parameters"], "seconds": seconds})
    return rows


def table(rows: List[Dict[str, Any]], series: str, horizon: int) -> str:
    def ms(values):
        return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}" if len(values) > 1 \
            else f"{values[0]:.3f}"
    lines = [f"{series}, H = {horizon}: validation windows, NRMSE (lower is better)", "",
             "| strategy | NRMSE over H steps | step 1 | step H | parameters | seconds |",
             "|---|---|---|---|---|---|"]
    for name in STRATEGIES:
        r = [x for x in rows if x["strategy"] == name]
        lines.append(f"| {name} | {ms([x['nrmse'] for x in r])} | {ms([x['nrmse_first'] for x in r])} | "
                     f"{ms([x['nrmse_last'] for x in r])} | {r[0]['parameters']} | "
                     f"{statistics.mean(x['seconds'] for x in r):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--series", default="mackey-glass")
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--seeds", default="0-2", help="e.g. 0-2 or 0,3")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--cell", default="gru")
    p.add_argument("--hidden", type=int, default=32)
    a = p.parse_args(argv)
    seeds = (list(range(int(a.seeds.split("-")[0]), int(a.seeds.split("-")[1]) + 1)) if "-" in a.seeds
             else [int(s) for s in a.seeds.split(",")])
    settings = {"train.epochs": a.epochs, "model.cell": a.cell, "model.hidden": a.hidden,
                "task.length": 2000, "task.split": [0.7, 0.3, 0.0]}
    rows = [r for s in seeds for r in run(a.series, a.horizon, s, settings)]
    print(table(rows, a.series, a.horizon))


if __name__ == "__main__":
    main()
