"""`rnntrain compare` and every run's report.html: the table reads back what the runs wrote,
work is counted in one unit for every family, and the pages render in a real browser."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import rnntrain
from rnntrain.cli.main import main
from rnntrain.reporting.compare import COLUMNS, RunRecord
from rnntrain.training.build import make_task

FAMILIES = {  # three families on one task: gradient, population, online
    "bptt": {"train.epochs": 3},
    "ga": {"train.epochs": 4, "algorithm.population": 6},
    "uoro": {"train.epochs": 2},
}


def config_of(algorithm, **extra):
    keys = {"algorithm.name": algorithm, "model.hidden": 8, "seed": 3, **FAMILIES[algorithm], **extra}
    return rnntrain.load_config(overrides=[f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                                           for k, v in keys.items()])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for algorithm in FAMILIES:
        rnntrain.train(config_of(algorithm), root / algorithm)
        out[algorithm] = root / algorithm
    return out


def train_steps(config) -> int:
    """Sequence-steps in one pass over the training split, counted from the task itself."""
    task = make_task(config)
    return sum(b.valid_steps for b in task.batches("train", 10_000))


def markdown_rows(text: str):
    lines = [l for l in text.splitlines() if l.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in l.strip("|").split("|")))) for l in lines[1:]]


def test_the_table_holds_what_each_run_wrote(runs, tmp_path, capsys):
    assert main(["compare", *map(str, runs.values()), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    rows = {r["algorithm"]: r for r in markdown_rows((tmp_path / "cmp" / "compare.md").read_text())}
    assert list(markdown_rows(printed)[0]) == list(COLUMNS)
    assert set(rows) == set(FAMILIES)
    for algorithm, path in runs.items():
        summary = json.loads((path / "summary.json").read_text())
        row = rows[algorithm]
        assert row["task"] == "forecast" and row["metric"] == "mase"
        for split in ("train", "val"):  # the headline metric, as the run wrote it (4 digits)
            assert float(row[split]) == pytest.approx(summary["metrics"][split]["mase"], rel=1e-3)
        assert row["best baseline"] == "persistence"
        assert float(row["baseline"]) == pytest.approx(summary["metrics"]["val"]["persistence_mase"], rel=1e-3)
        assert int(row["rounds"]) == summary["rounds"] == FAMILIES[algorithm]["train.epochs"]
        assert int(row["parameters"]) == summary["parameters"]
    csv_rows = (tmp_path / "cmp" / "compare.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + len(FAMILIES)


def test_work_is_forward_steps_for_every_family(runs):
    """BPTT: forward + backward = 3 per sequence-step per epoch; a GA: one forward per
    network per sequence-step (the initial population and each generation's offspring);
    UORO: forward, one jvp and one vjp = 4 per step."""
    steps = train_steps(config_of("bptt"))
    work = {a: [r["work"] for r in RunRecord.read(p).history] for a, p in runs.items()}
    assert work["bptt"] == [pytest.approx(3 * steps * (i + 1)) for i in range(3)]
    assert work["uoro"] == [pytest.approx(4 * steps * (i + 1)) for i in range(2)]
    ga = RunRecord.read(runs["ga"])  # the GA counts the networks it evaluated
    assert work["ga"] == [pytest.approx(steps * r["train_evaluations"]) for r in ga.history]
    assert ga.history[-1]["train_evaluations"] > 6 * 3  # the first population and the offspring
    assert ga.summary["work"] == work["ga"][-1]


def test_an_unfinished_run_is_compared_from_its_metrics_file(runs, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(runs["bptt"], partial)
    (partial / "summary.json").unlink()
    assert main(["compare", str(partial), str(runs["ga"]), "--out", str(tmp_path / "c")]) == 0
    row = markdown_rows(capsys.readouterr().out)[0]
    assert row["stopped"] == "unfinished" and row["rounds"] == "3"
    last = RunRecord.read(partial).history[-1]
    assert float(row["val"]) == pytest.approx(last["val_mase"], rel=1e-3)


def test_runs_with_one_name_are_told_apart_by_their_folders(runs, tmp_path, capsys):
    for parent in ("a", "b"):
        shutil.copytree(runs["bptt"], tmp_path / parent / "run")
    main(["compare", str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run"), "--out", str(tmp_path / "c")])
    assert [r["run"] for r in markdown_rows(capsys.readouterr().out)] == ["a/run", "b/run"]


def test_a_directory_that_is_no_run_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a run directory" in err and "\n" not in err


def test_pages_are_self_contained(runs, tmp_path):
    rnntrain.compare(list(runs.values()), tmp_path)
    for page in [tmp_path / "compare.html", *(p / "report.html" for p in runs.values())]:
        text = page.read_text()
        assert not re.search(r'src="(?!data:)|<link', text), page  # nothing fetched
        assert text.count("data:image/png;base64,") >= 1
    links = re.findall(r'<a href="([^"]+)">', (tmp_path / "compare.html").read_text())
    assert [(tmp_path / link).resolve() for link in links] == [(p / "report.html").resolve() for p in runs.values()]
    report = (runs["bptt"] / "report.html").read_text()
    for name in ("loss.png", "forecast.png", "train_metrics.png"):
        assert f'alt="{name}"' in report
    assert "[model]" in report  # the config


def test_report_is_rewritten_with_the_analyses(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["bptt"], run)
    assert main(["analyze", "dynamics", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    assert 'alt="analysis/dynamics_eigenvalues.png"' in (run / "report.html").read_text()


# ------------------------------------------------------------------ in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def chromium(page: Path, profile: Path, *args: str):
    """(stdout, console messages) of headless Chromium on ``page``."""
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    console = [l for l in done.stderr.splitlines() if ":CONSOLE" in l]
    return done.stdout, console


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("RNNTRAIN_BROWSER_TESTS"),
                    reason="headless Chromium is not installed (.ci/run installs Debian's chromium)")
def test_the_pages_render_in_chromium_without_console_errors(runs, tmp_path):
    assert CHROMIUM, "RNNTRAIN_BROWSER_TESTS is set but chromium is not installed"
    rnntrain.compare(list(runs.values()), tmp_path)
    for page in (tmp_path / "compare.html", runs["ga"] / "report.html"):
        dom, console = chromium(page, tmp_path / "profile", "--dump-dom")
        assert console == [], console  # the pages log nothing: any message is an error
        assert 'data-images="ok"' in dom  # every embedded plot decoded (checked on load)
    dom, _ = chromium(tmp_path / "compare.html", tmp_path / "profile", "--dump-dom")
    assert dom.count("<tr>") == 2 * (1 + len(FAMILIES))  # the table and the list of runs: header + a row each
    assert dom.count("report.html</a>") == len(FAMILIES)
    shot = tmp_path / "shot.png"
    chromium(tmp_path / "compare.html", tmp_path / "profile", f"--screenshot={shot}", "--window-size=1300,1100")
    import matplotlib.image
    pixels = matplotlib.image.imread(shot)[..., :3]  # (H, W, 3) in [0, 1]
    top, plots = pixels[:300], pixels[380:]
    dark = lambda a: float((a.mean(-1) < 0.3).mean())  # text and table lines
    coloured = lambda a: float((a.max(-1) - a.min(-1) > 0.4).mean())  # the curves' colours
    assert dark(top) > 0.005  # the table is drawn
    assert coloured(plots) > 0.001  # and so are the curves


def test_the_best_baseline_is_a_baseline_not_a_metric_ending_in_the_headline():
    """classify: balanced_accuracy ends in "_accuracy" but is a metric of the model; the
    majority class is the baseline (it reports the model's metrics under its name)."""
    config = rnntrain.load_config(base={"task.kind": "classify"})
    split = {"accuracy": 0.8, "balanced_accuracy": 0.7, "macro_f1": 0.6, "majority_accuracy": 0.3,
             "majority_balanced_accuracy": 0.1, "majority_macro_f1": 0.05}
    record = RunRecord(Path("run"), config, {"headline": "accuracy", "metrics": {"test": split}})
    assert record.best_baseline() == ("majority", 0.3)
    forecast = {"mase": 1.2, "mse": 0.1, "persistence_mase": 0.9, "persistence_mse": 0.2,
                "mean_mase": 3.0, "mean_mse": 1.0}
    record = RunRecord(Path("run"), rnntrain.load_config(), {"headline": "mase", "metrics": {"val": forecast}})
    assert record.best_baseline() == ("persistence", 0.9)  # the lower MASE of the two
