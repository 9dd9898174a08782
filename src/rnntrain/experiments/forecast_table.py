r"""The default forecasting command on the real series aeon ships, beside the baselines.

For every series: ``rnntrain train --data FILE --seed S`` (nothing else: the defaults made
for a user's file), its test NRMSE and MASE (mean over seeds) against persistence,
seasonal naive and the training mean on the same test windows::

    python -m rnntrain.experiments.forecast_table --seeds 0-2
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
from pathlib import Path
from typing import Dict, List

from rnntrain.cli.main import main as cli
from rnntrain.tasks.labelled.sequences import aeon_dataset_dir

SERIES = {  # aeon's file -> what it is
    "Airline/Airline.csv": "monthly airline passengers 1949-60 (trend, yearly season)",
    "ShampooSales/ShampooSales.csv": "monthly shampoo sales, 3 years (trend)",
    "Lynx/Lynx.csv": "yearly lynx trappings 1821-1934 (10-year cycle)",
    "Uschange/Uschange.csv": "quarterly US consumption, income, production, savings, unemployment changes",
    "solar/solar.csv": "half-hourly solar generation (daily season)",
}
BASELINES = ("persistence", "seasonal_naive", "mean")


def run(rel: str, seed: int, extra: List[str]) -> Dict[str, float]:
    folder = aeon_dataset_dir()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        with contextlib.redirect_stdout(io.StringIO()):  # each run's summary: only the table is printed
            code = cli(["train", "--data", str(folder / rel), "--seed", str(seed), "--out", str(out), "--quiet", *extra])
        if code != 0:
            return {}
        summary = json.loads((out / "summary.json").read_text())
    test = summary["metrics"].get("test", {})
    return {k: v for k, v in test.items() if k.endswith(("nrmse", "mase"))} | {"season": summary["against_baselines"]["season"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--set", nargs="*", default=[], help="extra rnntrain train arguments")
    a = p.parse_args(argv)
    lo, hi = (a.seeds.split("-") + [a.seeds])[:2]
    seeds = range(int(lo), int(hi) + 1)
    print("| series | rows' season | default: test NRMSE / MASE | persistence | seasonal naive | mean | beats |")
    print("|---|---|---|---|---|---|---|")
    for rel, what in SERIES.items():
        runs = [r for r in (run(rel, s, a.set) for s in seeds) if r]
        if not runs:
            print(f"| {rel.split('/')[0]} ({what}) | | failed | | | | |")
            continue
        mean = lambda k: statistics.fmean(r[k] for r in runs) if all(k in r for r in runs) else float("nan")
        cells = [f"{mean(b + '_nrmse'):.3g} / {mean(b + '_mase'):.3g}" if f"{b}_mase" in runs[0] else "n/a"
                 for b in BASELINES]
        beats = [b.replace("_", " ") for b in BASELINES if f"{b}_mase" in runs[0]
                 and mean("mase") < mean(f"{b}_mase")]
        print(f"| {rel.split('/')[0]} ({what}) | {runs[0]['season']} | **{mean('nrmse'):.3g} / {mean('mase'):.3g}** | "
              + " | ".join(cells) + f" | {', '.join(beats) or 'none'} (by MASE) |", flush=True)


if __name__ == "__main__":
    main()
