"""The cell and regulariser rows of docs/reproductions.md (docs/cells.md), each a list of
``rnntrain train`` runs with the same budget:

- ``regularisation``: AWD-LSTM's regularisers (Merity, Keskar & Socher 2018: weight-drop on
  the recurrent matrix, locked dropout on inputs, between layers and on outputs) on a
  character model of the first ``--chars`` characters of tinyshakespeare, against the same
  network unregularised; validation and test bits per character.
- ``irregular``: the weekly Mauna Loa CO2 series (statsmodels' ``co2``, 1958-2001; the weeks
  with a reading), half of its rows dropped at random (seeded), so the gaps run from one week
  to many; a continuous-time RNN that integrates each step over its gap
  (``task.time_column``, ``model.ct_dt = 0``) against the same cell with a fixed step and a
  GRU with and without the gap as an input. Test MASE of the next reading, beside
  persistence.

    python -m rnntrain.experiments.cells regularisation --text ../shared/data/tinyshakespeare.txt --out /tmp/cells
    python -m rnntrain.experiments.cells irregular --out /tmp/cells

Every run: the seeds of ``--seeds`` (default 1), one torch thread, the last weights (``train.restore_best = false``). The
data files are written into ``--out`` from the installed package or the given text (never
committed).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Dict, List, Tuple

COMMON = ["--set", "threads=1", "--set", "train.restore_best=false", "--quiet"]
AWD = ["--weight-drop", "0.5", "--dropout", "0.25", "--set", "model.variational=true",
       "--set", "model.input_dropout=0.1", "--set", "model.output_dropout=0.4"]


def regularisation(out: Path, text: Path, chars: int, epochs: int) -> List[Tuple[str, List[str]]]:
    corpus = out / f"shakespeare_{chars}.txt"
    corpus.write_text(text.read_text(encoding="utf-8")[:chars], encoding="utf-8")
    base = ["--text", str(corpus), "--cell", "lstm", "--hidden", "256", "--layers", "2",
            "--epochs", str(epochs), "--lr", "0.003"]
    return [("plain", base), ("awd", base + AWD)]


def irregular(out: Path, keep: float, epochs: int) -> List[Tuple[str, List[str]]]:
    import numpy as np
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data.dropna()
    rows = np.sort(np.random.default_rng(0).choice(len(frame), int(keep * len(frame)), replace=False))
    path = out / "co2_irregular.csv"
    frame.iloc[rows].to_csv(path, index_label="date")
    base = ["--data", str(path), "--column", "co2", "--window", "24", "--hidden", "32",
            "--epochs", str(epochs)]
    timed = ["--set", "task.time_column=date"]
    return [("gru", base + ["--cell", "gru"]),
            ("gru_dt_input", base + ["--cell", "gru"] + timed),
            ("ctrnn_fixed_step", base + ["--cell", "ctrnn"]),
            ("ctrnn_timed_euler", base + ["--cell", "ctrnn", "--set", "model.ct_dt=0"] + timed),
            ("ctrnn_timed_rk4", base + ["--cell", "ctrnn", "--set", "model.ct_dt=0",
                                        "--set", "model.ct_method=rk4"] + timed)]


def _run(out: Path, name: str, args: List[str], seed: int) -> Dict:
    from ..cli.main import main
    run = out / f"{name}_seed{seed}"
    start = time.perf_counter()
    code = main(["train", *args, *COMMON, "--seed", str(seed), "--out", str(run), "--overwrite"])
    if code != 0:
        raise SystemExit(f"{name}: rnntrain train exited with {code}")
    summary = json.loads((run / "summary.json").read_text())
    return {"run": name, "seed": seed, "args": args, "wall": round(time.perf_counter() - start, 1),
            "metrics": summary["metrics"], "against_baselines": summary.get("against_baselines")}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("row", choices=("regularisation", "irregular"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--text", type=Path, help="regularisation: the text (tinyshakespeare.txt)")
    p.add_argument("--chars", type=int, default=200_000, help="regularisation: leading characters used")
    p.add_argument("--keep", type=float, default=0.5, help="irregular: fraction of the rows kept")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.row == "regularisation":
        if a.text is None:
            p.error("regularisation needs --text (e.g. ../shared/data/tinyshakespeare.txt)")
        runs = regularisation(a.out, a.text, a.chars, a.epochs)
    else:
        runs = irregular(a.out, a.keep, a.epochs)
    results = [_run(a.out, name, args, seed) for seed in a.seeds for name, args in runs]
    (a.out / f"{a.row}.json").write_text(json.dumps(results, indent=1))
    for name, _ in runs:  # one line per configuration: each measure over the seeds
        mine = [r for r in results if r["run"] == name]
        line = []
        for split, key in (("val", "bpc"), ("test", "bpc"), ("val", "mase"), ("test", "mase"), ("test", "mse")):
            values = [r["metrics"][split][key] for r in mine if key in r["metrics"].get(split, {})]
            if values:
                line.append(f"{split} {key} {statistics.mean(values):.4f} ({', '.join(f'{v:.4f}' for v in values)})")
        print(name, "; ".join(line), f"; {statistics.mean(r['wall'] for r in mine):.1f} s per run")


if __name__ == "__main__":
    main()
