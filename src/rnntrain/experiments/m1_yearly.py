r"""Many series in one file: the 181 yearly series of the M1 competition (Makridakis et al.
1982), as aeon ships them (a .tsf file), through ``--series-id``.

The file is written as a long CSV (series, year, value) into a temporary folder, then::

    rnntrain train --data m1_yearly.csv --series-id series --horizon 6 --window 3 \
                   --set task.test_rows=6 --set "task.split=[1.0]" --seed S

i.e. the competition's setup: the last 6 years of every series are its test (one 6-step
forecast per series), the model is trained on every series' earlier years (no validation
split: the shortest series has 15 years, 9 before the test, so the window is 3). Printed:
test MASE and sMAPE, averaged over the series, against the naive forecast (persistence) and
the training mean on the same windows, per seed and their mean::

    python -m rnntrain.experiments.m1_yearly --seeds 0-2
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
from pathlib import Path

from rnntrain.cli.main import main as cli
from rnntrain.tasks.labelled.sequences import aeon_dataset_dir

COMMAND = ["--series-id", "series", "--horizon", "6", "--window", "3", "--set", "task.test_rows=6",
           "--set", "task.split=[1.0]"]


def write_long_csv(path: Path) -> int:
    """The M1 yearly series as a long CSV; returns the number of series."""
    from aeon.datasets import load_from_tsf_file
    frame, _ = load_from_tsf_file(str(aeon_dataset_dir() / "m1_yearly_dataset" / "m1_yearly_dataset.tsf"))
    with open(path, "w") as f:
        f.write("series,year,value\n")
        for name, start, values in zip(frame.series_name, frame.start_timestamp, frame.series_value):
            f.writelines(f"{name},{start.year + k},{v}\n" for k, v in enumerate(values))
    return len(frame)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0-2")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="extra rnntrain train arguments (after --)")
    a = p.parse_args(argv)
    lo, hi = (a.seeds.split("-") + [a.seeds])[:2]
    extra = [x for x in a.extra if x != "--"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "m1_yearly.csv"
        count = write_long_csv(data)
        for seed in range(int(lo), int(hi) + 1):
            out = Path(tmp) / f"run{seed}"
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli(["train", "--data", str(data), *COMMAND, "--seed", str(seed), "--out", str(out),
                            "--quiet", *extra])
            if code != 0:
                raise SystemExit(code)
            test = json.loads((out / "summary.json").read_text())["metrics"]["test"]
            rows.append(test)
            print(f"seed {seed}: MASE {test['mase']:.3f} sMAPE {test['smape']:.2f}", flush=True)
    mean = lambda k: statistics.fmean(r[k] for r in rows)
    print(f"\n| M1 yearly ({count} series, horizon 6) | test MASE | test sMAPE (%) |\n|---|---|---|")
    print(f"| rnntrain (mean of {len(rows)} seeds) | **{mean('mase'):.3f}** | **{mean('smape'):.2f}** |")
    print(f"| naive (persistence) | {mean('persistence_mase'):.3f} | {mean('persistence_smape'):.2f} |")
    print(f"| training mean | {mean('mean_mase'):.3f} | {mean('mean_smape'):.2f} |")


if __name__ == "__main__":
    main()
