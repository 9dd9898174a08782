"""Runs side by side: ``rnntrain compare RUN_DIR...`` and every run's own ``report.html``.

What a comparison reads of each run directory (nothing is recomputed, so the table shows the
numbers the runs wrote): ``config.toml`` (task, algorithm, cell, size), ``summary.json``
(final metrics on every split, parameters, time, work; absent while a run is unfinished, then
the last row of ``metrics.csv`` stands in) and ``metrics.csv`` (the curves).

The columns that make families comparable:

- the task's *headline* metric (``Task.headline``: MASE for forecasts, accuracy for
  classification, bits per character for text, ...) on train, validation and test, beside the
  best of the task's baselines on the split the run was judged on (``BASELINE_<headline>``
  in the metrics: persistence, majority class, ...);
- wall time, rounds in the family's own unit, and *work* in forward-step equivalents
  (:class:`rnntrain.algorithms.base.Work`), the unit in which a GA generation, a BPTT epoch and
  an RTRL stretch are comparable. Curves of validation loss are drawn against all three.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import UserError
from ..tasks.base import HIGHER_IS_BETTER
from . import html as H

PathLike = Union[str, Path]
SPLITS = ("train", "val", "test")


def _value(text: str) -> Any:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


@dataclass
class RunRecord:
    """What a run directory says about itself (read-only)."""

    path: Path
    config: Any  # RunConfig
    summary: Dict[str, Any]
    history: List[Dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, path: PathLike) -> "RunRecord":
        from ..training.run_dir import RunDir
        run = RunDir(path)
        if not (run.path / "config.toml").is_file():
            raise UserError(f"{path} is not a run directory (no config.toml): give directories that "
                            f"`rnntrain train --out DIR` wrote")
        summary = run.read_summary() if (run.path / "summary.json").is_file() else {}
        history = []
        metrics = run.path / "metrics.csv"
        if metrics.is_file():
            with open(metrics, newline="", encoding="utf-8") as f:
                history = [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(f)]
        return cls(run.path, run.read_config(), summary, history)

    # -- what the table shows --------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return bool(self.summary)

    @property
    def headline(self) -> str:
        if "headline" in self.summary:
            return self.summary["headline"]
        from ..tasks import TASKS  # runs from before summaries named it: the task class says
        return TASKS[self.config.task_kind][1].headline

    def metric(self, split: str, name: Optional[str] = None) -> Optional[float]:
        name = name or self.headline
        if self.finished:
            return self.summary.get("metrics", {}).get(split, {}).get(name)
        values = [r.get(f"{split}_{name}") for r in self.history if r.get(f"{split}_{name}") is not None]
        return values[-1] if values else None

    @property
    def judged(self) -> str:
        """The split the run is judged on: test when it has one, else validation."""
        metrics = self.summary.get("metrics", {})
        return "test" if metrics.get("test") else "val"

    def best_baseline(self) -> Optional[Tuple[str, float]]:
        """(name, value) of the task's best baseline on :attr:`judged`, by the headline metric.
        A baseline B reports the model's metrics as B_<metric> (persistence_mase, majority_
        accuracy): B counts when it has the headline and another of the model's metrics, so
        that a metric whose own name ends in the headline (balanced_accuracy) is none."""
        h = self.headline
        split = self.summary.get("metrics", {}).get(self.judged, {})
        found = []
        for key, value in split.items():
            if key.endswith("_" + h) and isinstance(value, (int, float)):
                name = key[:-len(h) - 1]
                if any(f"{name}_{m}" in split for m in split if m != h and not m.startswith(name + "_")):
                    found.append((name, value))
        if not found:
            return None
        return (max if h in HIGHER_IS_BETTER else min)(found, key=lambda kv: kv[1])

    @property
    def model(self) -> str:
        m = self.config.model
        size = f"{m.hidden}" + (f"x{m.layers}" if m.layers > 1 else "")
        return f"{'bi-' if m.bidirectional else ''}{m.cell} {size}"

    def curve(self, x: str) -> Tuple[List[float], List[float], str]:
        """(xs, validation losses, label) against ``x`` ("round", "seconds" or "work");
        the training loss where a run evaluated no validation loss."""
        key = "val_loss" if any(r.get("val_loss") is not None for r in self.history) else "train_loss"
        pts = [(r.get(x), r.get(key)) for r in self.history]
        pts = [(a, b) for a, b in pts if a is not None and b is not None]
        return [a for a, _ in pts], [b for _, b in pts], key


COLUMNS = ("run", "task", "algorithm", "model", "parameters", "metric", "train", "val", "test",
           "best baseline", "baseline", "rounds", "unit", "seconds", "work (forward steps)", "stopped")


@dataclass
class Comparison:
    """Runs side by side: :meth:`rows` for the table, :meth:`plot` for the curves."""

    runs: List[RunRecord]

    @property
    def names(self) -> List[str]:
        """Each run's directory name, with as many parent folders as it takes to tell them apart."""
        depth = 1
        while True:
            names = ["/".join(r.path.resolve().parts[-depth:]) for r in self.runs]
            if len(set(names)) == len(names) or depth > 8:
                return names
            depth += 1

    def rows(self) -> List[List[Any]]:
        out = []
        for name, r in zip(self.names, self.runs):
            base = r.best_baseline()
            last = r.history[-1] if r.history else {}
            out.append([name, r.config.task_kind, r.config.algorithm_name, r.model, r.summary.get("parameters"),
                        r.headline, *(r.metric(s) for s in SPLITS),
                        base[0] if base else None, base[1] if base else None,
                        r.summary.get("rounds", last.get("round")),
                        r.summary.get("unit", ""), r.summary.get("seconds", last.get("seconds")),
                        r.summary.get("work", last.get("work")),
                        r.summary.get("stop_reason", "unfinished")])
        return out

    def to_markdown(self) -> str:
        return H.markdown_table(COLUMNS, self.rows())

    def to_csv(self, path: Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(self.rows())

    def plot(self, path: Path) -> None:
        """Validation loss against rounds, wall time and work, one line per run."""
        from .plots import plt, save
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        logy = True
        for name, r in zip(self.names, self.runs):
            for ax, x in zip(axes, ("round", "seconds", "work")):
                xs, ys, key = r.curve(x)
                if xs:
                    ax.plot(xs, ys, marker="." if len(xs) < 30 else None,
                            label=name + (" (train loss)" if key == "train_loss" else ""))
                    logy = logy and min(ys) > 0
        for ax, label in zip(axes, ("round (each family's own unit)", "wall time (s)",
                                    "work (forward-step equivalents)")):
            ax.set_xlabel(label)
            ax.set_ylabel("validation loss")
            if logy:
                ax.set_yscale("log")
        axes[2].set_xscale("log")  # families differ by orders of magnitude in work
        axes[0].legend(fontsize=8)
        fig.suptitle("Validation loss against rounds, time and work")
        save(fig, path)

    def to_html(self, curves: Path, out: Optional[Path] = None) -> str:
        note = ("work counts forward-step equivalents: one sequence advanced one step by a forward pass = 1; "
                "a gradient step (forward + backward) = 3 (rnntrain.algorithms.base.Work)")
        return H.page("rnntrain: runs compared", [
            "<h2>Final metrics</h2>", H.table(COLUMNS, self.rows()), f'<p class="muted">{H.esc(note)}</p>',
            "<h2>Curves</h2>", H.image(curves, "validation loss against rounds, time and work"),
            "<h2>Runs</h2>", H.table(("run", "directory", "its report"),
                                      [[n, str(r.path), _report_link(r.path, out)] for n, r in zip(self.names, self.runs)],
                                      sortable=False)],
            subtitle=f"{len(self.runs)} runs")


def _report_link(run: Path, out: Optional[Path]):
    """A link from the comparison in ``out`` to the run's report.html, when it has one."""
    page = run / "report.html"
    if out is None or not page.is_file():
        return ""
    return H.Link("report.html", os.path.relpath(page.resolve(), out.resolve()))


def compare(run_dirs: Sequence[PathLike], out_dir: PathLike) -> Comparison:
    """Read ``run_dirs`` and write compare.md, compare.csv, compare.png and compare.html
    (self-contained) into ``out_dir``."""
    if not run_dirs:
        raise UserError("give at least one run directory to compare")
    comparison = Comparison([RunRecord.read(p) for p in run_dirs])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(comparison.to_markdown(), encoding="utf-8")
    comparison.to_csv(out / "compare.csv")
    comparison.plot(out / "compare.png")
    (out / "compare.html").write_text(comparison.to_html(out / "compare.png", out), encoding="utf-8")
    return comparison


# ------------------------------------------------------------------ one run's report.html

TEXT_LIMIT = 20_000  # characters of a text file (samples, confusion matrix) shown in a report


def run_report(run_dir: PathLike) -> Path:
    """Write ``RUN_DIR/report.html``: what was trained, its metrics on every split beside the
    baselines, every plot the run (and its analyses) drew, its samples and its config."""
    r = RunRecord.read(run_dir)
    s = r.summary
    facts = [["task", r.config.task_kind], ["algorithm", r.config.algorithm_name], ["model", r.model],
             ["parameters", s.get("parameters")], ["rounds", f"{s.get('rounds', len(r.history))} ({s.get('unit', 'round')}s)"],
             ["stopped", s.get("stop_reason", "unfinished")], ["best round", s.get("best_round")],
             ["seconds", s.get("seconds")], ["work (forward steps)", s.get("work")],
             ["environment", json.dumps(s.get("environment", {}))]]
    sections = ["<h2>Run</h2>", H.table(("", "value"), facts, sortable=False)]
    metrics = s.get("metrics", {})
    names = list(dict.fromkeys(k for split in metrics.values() for k in split))
    if names:
        sections += [f"<h2>Metrics (headline: {H.esc(r.headline)})</h2>",
                     H.table(("metric", *metrics), [[n, *(metrics[sp].get(n) for sp in metrics)] for n in names])]
    verdict = s.get("against_baselines")
    if verdict:
        sections += ["<h2>Against the baselines</h2>", f"<pre>{H.esc(json.dumps(verdict, indent=2))}</pre>"]
    pngs = sorted(r.path.glob("*.png")) + sorted((r.path / "analysis").glob("*.png"))
    if pngs:
        sections += ["<h2>Plots</h2>"] + [H.image(p, p.relative_to(r.path).as_posix()) for p in pngs]
    texts = [p for p in sorted(r.path.glob("*.txt")) + sorted(r.path.glob("*.csv")) if p.name != "metrics.csv"]
    for p in texts:
        text = p.read_text(encoding="utf-8", errors="replace")
        cut = f"\n... ({len(text) - TEXT_LIMIT} more characters in {p.name})" if len(text) > TEXT_LIMIT else ""
        sections += [f"<h2>{H.esc(p.name)}</h2>", f"<pre>{H.esc(text[:TEXT_LIMIT] + cut)}</pre>"]
    sections += ["<h2>Config</h2>", f"<pre>{H.esc((r.path / 'config.toml').read_text(encoding='utf-8'))}</pre>"]
    path = r.path / "report.html"
    from ..training.checkpoint import atomic_write_text
    atomic_write_text(path, H.page(f"rnntrain run: {r.path.name}", sections,
                                   subtitle=f"{r.config.algorithm_name} on {r.config.task_kind}"))
    return path
