r"""Random weight guessing vs GA, PSO, annealing and CMA-ES on Hochreiter & Schmidhuber's
parity problem (see :mod:`rnntrain.tasks.guessing` for the task and the paper's set-up).

Every method gets the same budget of evaluations (one evaluation = one weight vector tested
on all training sequences); a run stops at the first weight vector that classifies every
training sequence within ``tolerance`` and reports the evaluations it took (the paper's
"trials"). Runs append one JSON line each to ``--out``; ``--table`` prints the summary::

    python -m rnntrain.experiments.guessing --methods guess --seeds 0-9 --out /tmp/guess/runs.jsonl
    python -m rnntrain.experiments.guessing --methods ga pso anneal cmaes --seeds 0-4 --out /tmp/guess/runs.jsonl
    python -m rnntrain.experiments.guessing --table /tmp/guess/runs.jsonl

Guessing trials are independent, so besides the per-run counts the table gives the
censoring-aware estimate of the mean number of guesses, 1 / p with p = solved runs / all
guesses made (solved runs' counts plus the full budget of unsolved runs).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

import rnntrain

PAPER = {"parity": "2906 (A1, n = 1); 2797 (A2)", "latch": "22 (variant II)"}

# Search settings per method: every method starts from (or around) the guessing range.
METHOD_SETTINGS: Dict[str, Dict[str, Any]] = {
    "guess": {},
    "ga": {"algorithm.mutation_scale": 10.0},
    "pso": {"algorithm.velocity_clamp": 20.0},
    "anneal": {"algorithm.step": 10.0},
    "cmaes": {"algorithm.sigma": 50.0},
}


def config(method: str, seed: int, *, problem: str = "parity", budget: int = 20000,
           population: int = 100, length: int = 500, examples: int = 100, hidden: int = 2,
           init_range: float = 100.0, tolerance: float = 0.2):
    """The run's configuration: ``budget // population`` generations of ``population``."""
    base = {"task.kind": "guessing", "task.problem": problem, "task.length": length,
            "task.examples": examples, "model.hidden": hidden, "algorithm.name": method,
            "algorithm.population": population, "algorithm.init_range": init_range,
            "algorithm.solved_fraction": 1.0, "algorithm.tolerance": tolerance,
            "train.epochs": max(1, budget // population), "seed": seed}
    base.update(METHOD_SETTINGS[method])
    return rnntrain.load_config(base=base)


def run(method: str, seed: int, **kw) -> Dict[str, Any]:
    t0 = time.time()
    r = rnntrain.train(config(method, seed, **kw))
    last, m = r.history[-1], r.summary["metrics"]
    reason = r.summary.get("stop_reason") or ""
    return {"method": method, "seed": seed, **kw, "solved": solved_after(reason) is not None,
            "evaluations": int(last["train_evaluations"]),
            "evaluations_to_solve": solved_after(reason),
            "train_accuracy": m["train"]["accuracy"], "test_accuracy": m["val"]["accuracy"],
            "seconds": round(time.time() - t0, 1), "stop_reason": r.summary.get("stop_reason")}


def solved_after(stop_reason: str):
    """Evaluations up to the first solving weight vector, from the summary's stop reason."""
    m = re.search(r"100\.0% of training examples.* after (\d+) evaluations", stop_reason or "")
    return int(m.group(1)) if m else None


def table(rows: List[Dict[str, Any]]) -> str:
    out = ["| method | runs | solved | evaluations to solve (solved runs) | mean | median "
           "| est. mean trials 1/p | test accuracy of solutions |", "|---|---|---|---|---|---|---|---|"]
    for method in METHOD_SETTINGS:
        rs = [dict(r, evaluations_to_solve=solved_after(r["stop_reason"]))
              for r in rows if r["method"] == method]
        for r in rs:
            r["solved"] = r["evaluations_to_solve"] is not None
        if not rs:
            continue
        budget = rs[0].get("budget", 20000)
        ok = sorted(r["evaluations_to_solve"] for r in rs if r["solved"])
        spent = sum(r["evaluations_to_solve"] if r["solved"] else r["evaluations"] for r in rs)
        est = (f"{spent / len(ok):.0f}" if ok else f"> {spent}") if method == "guess" else "-"
        mean = f"{statistics.mean(ok):.0f}" if ok else "-"
        med = f"{statistics.median(ok):.0f}" if ok else "-"
        acc = ", ".join(f"{r['test_accuracy']:.2f}" for r in rs if r["solved"]) or "-"
        counts = ", ".join(str(c) for c in ok) or f"not solved within {budget}"
        out.append(f"| {method} | {len(rs)} | {len(ok)}/{len(rs)} | {counts} | {mean} | {med} | {est} | {acc} |")
    return "\n".join(out)


def seeds(spec: str) -> List[int]:
    if "-" in spec:
        a, b = spec.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in spec.split(",")]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=list(METHOD_SETTINGS), choices=list(METHOD_SETTINGS))
    p.add_argument("--seeds", default="0-4", help="e.g. 0-9 or 0,3,5")
    p.add_argument("--problem", default="parity", choices=["parity", "latch"])
    p.add_argument("--budget", type=int, default=20000, help="evaluations per run")
    p.add_argument("--population", type=int, default=100)
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--examples", type=int, default=100)
    p.add_argument("--hidden", type=int, default=2)
    p.add_argument("--init-range", type=float, default=100.0)
    p.add_argument("--tolerance", type=float, default=0.2)
    p.add_argument("--out", type=Path, help="append one JSON line per run")
    p.add_argument("--table", type=Path, nargs="+", help="print the table of these JSON-lines files")
    a = p.parse_args(argv)
    if a.table:
        rows = [json.loads(l) for f in a.table for l in f.read_text().splitlines() if l.strip()]
        for problem in sorted({r["problem"] for r in rows}):
            print(f"{problem} (paper, RG mean trials: {PAPER[problem]})")
            print(table([r for r in rows if r["problem"] == problem]))
        return
    torch.set_num_threads(1)
    kw = dict(problem=a.problem, budget=a.budget, population=a.population, length=a.length,
              examples=a.examples, hidden=a.hidden, init_range=a.init_range, tolerance=a.tolerance)
    for method in a.methods:
        for seed in seeds(a.seeds):
            row = run(method, seed, **kw)
            print(json.dumps(row), flush=True)
            if a.out:
                with a.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
