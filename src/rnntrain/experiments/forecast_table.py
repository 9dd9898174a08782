r"""The default forecasting command on the real series aeon, statsmodels and matplotlib ship,
beside the baselines.

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

SERIES = {  # "package:file" -> what it is
    "aeon:Airline/Airline.csv": "monthly airline passengers 1949-60 (trend, yearly season)",
    "aeon:ShampooSales/ShampooSales.csv": "monthly shampoo sales, 3 years (trend)",
    "statsmodels:elec_equip/elec_equip.csv": "monthly euro-area electrical equipment orders 1995-2016 (season)",
    "aeon:Lynx/Lynx.csv": "yearly lynx trappings 1821-1934 (10-year cycle)",
    "statsmodels:sunspots/sunspots.csv": "yearly sunspot activity 1700-2008 (11-year cycle)",
    "statsmodels:nile/nile.csv": "yearly Nile flow 1871-1970 (level shift)",
    "aeon:Uschange/Uschange.csv": "quarterly US consumption, income, production, savings, unemployment changes",
    "statsmodels:co2/co2.csv": "weekly Mauna Loa CO2 1958-2001 (trend, yearly season; gaps interpolated)",
    "aeon:solar/solar.csv": "half-hourly solar generation (daily season)",
    "matplotlib:msft.csv": "daily Microsoft stock, Jun-Sep 2003 (business days; newest first in the file)",
}
# the few arguments a file needs to be read at all (co2 has missing weeks)
NEEDS = {"statsmodels:co2/co2.csv": ["--interpolate"],
         "matplotlib:msft.csv": ["--column", "Close"]}  # the price, not open/high/low/volume too


def series_path(key: str) -> Path:
    """The installed file of a SERIES key (aeon's data folder, statsmodels' datasets)."""
    package, rel = key.split(":", 1)
    if package == "aeon":
        return aeon_dataset_dir() / rel
    if package == "matplotlib":  # matplotlib's sample data (installed with it)
        import matplotlib
        return Path(matplotlib.get_data_path()) / "sample_data" / rel
    import statsmodels.datasets
    return Path(statsmodels.datasets.__file__).parent / rel
BASELINES = ("persistence", "seasonal_naive", "mean")


# the settings --sweep tries beside the default; the best by mean validation MASE is reported
SETTINGS = {
    "default": [],
    "--window 24": ["--window", "24"],
    "--cell lstm": ["--cell", "lstm"],
    "--calendar": ["--calendar"],
    "normalize window": ["--set", "task.normalize=window"],
    "normalize none": ["--set", "task.normalize=none"],
    "--epochs 300": ["--epochs", "300"],
}


def run(key: str, seed: int, extra: List[str]) -> Dict[str, float]:
    """One run's test NRMSE/MASE (its own and the baselines'), validation MASE and season."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        with contextlib.redirect_stdout(io.StringIO()):  # each run's summary: only the table is printed
            code = cli(["train", "--data", str(series_path(key)), "--seed", str(seed), "--out", str(out), "--quiet",
                        *NEEDS.get(key, []), *extra])
        if code != 0:
            return {}
        summary = json.loads((out / "summary.json").read_text())
    test = summary["metrics"].get("test", {})
    return ({k: v for k, v in test.items() if k.endswith(("nrmse", "mase"))}
            | {"val_mase": summary["metrics"]["val"]["mase"], "season": summary["against_baselines"]["season"]})


def mean_of(runs: List[Dict[str, float]], key: str) -> float:
    return statistics.fmean(r[key] for r in runs) if runs and all(key in r for r in runs) else float("nan")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--sweep", nargs="*", metavar="SETTING", help=f"also run these settings (default: all of "
                   f"{', '.join(SETTINGS)}) and report the best by validation MASE")
    p.add_argument("--only", nargs="*", metavar="NAME", help="only these series (e.g. Airline co2)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="extra rnntrain train arguments (after --)")
    a = p.parse_args(argv)
    lo, hi = (a.seeds.split("-") + [a.seeds])[:2]
    seeds = range(int(lo), int(hi) + 1)
    extra = [x for x in a.extra if x != "--"]
    sweep = [] if a.sweep is None else (a.sweep or [k for k in SETTINGS if k != "default"])
    best_col = " | best setting (by val MASE): test NRMSE / MASE" if sweep else ""
    print(f"| series | rows' season | default: test NRMSE / MASE | persistence | seasonal naive | mean | beats{best_col} |")
    print("|---|---|---|---|---|---|---" + ("|---" if sweep else "") + "|")
    for rel, what in SERIES.items():
        name = rel.split(":")[1].split("/")[0].removesuffix(".csv")
        if a.only and name not in a.only:
            continue
        runs = [r for r in (run(rel, s, extra) for s in seeds) if r]
        if not runs:
            print(f"| {name} ({what}) | | failed | | | | |")
            continue
        cells = [f"{mean_of(runs, b + '_nrmse'):.3g} / {mean_of(runs, b + '_mase'):.3g}" if f"{b}_mase" in runs[0]
                 else "n/a" for b in BASELINES]
        beats = [b.replace("_", " ") for b in BASELINES if f"{b}_mase" in runs[0]
                 and mean_of(runs, "mase") < mean_of(runs, f"{b}_mase")]
        best = ""
        if sweep:
            tried = {"default": runs}
            for setting in sweep:
                tried[setting] = [r for r in (run(rel, s, extra + SETTINGS[setting]) for s in seeds) if r]
            pick = min((k for k in tried if tried[k]), key=lambda k: mean_of(tried[k], "val_mase"))
            best = f" | {pick}: {mean_of(tried[pick], 'nrmse'):.3g} / {mean_of(tried[pick], 'mase'):.3g}"
        print(f"| {name} ({what}) | {runs[0]['season']} | **{mean_of(runs, 'nrmse'):.3g} / {mean_of(runs, 'mase'):.3g}** | "
              + " | ".join(cells) + f" | {', '.join(beats) or 'none'} (by MASE){best} |", flush=True)


if __name__ == "__main__":
    main()
