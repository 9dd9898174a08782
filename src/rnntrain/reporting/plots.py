"""Run-level plots (losses, metric families) and the plots tasks draw (forecasts, attention,
confusion matrices).

matplotlib is imported when a figure is first drawn (:func:`pyplot`), not with this module:
a run's own figures (:func:`run_plot`) are drawn by a worker process while the run goes on
(:mod:`.render`), so the run never pays matplotlib's import. ``from .plots import plt``
still gives pyplot, for the figures drawn where they are asked for.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import render


@functools.lru_cache(maxsize=None)
def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot
    return matplotlib.pyplot


def warm_up() -> None:
    """pyplot imported, and one text with mathtext (a log axis's tick labels) drawn where
    nobody sees it: a process's first figure loads the fonts and builds the mathtext parser,
    0.08 s here, which the plot worker does while the run trains."""
    import io
    fig = pyplot().figure(figsize=(1, 1))
    fig.text(0, 0, "epoch $10^{-3}$")
    fig.savefig(io.BytesIO(), format="png", dpi=10)
    pyplot().close(fig)


def __getattr__(name: str):
    if name == "plt":  # `from .plots import plt`
        return pyplot()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_plot(draw: Callable[..., Any]) -> Callable[..., None]:
    """A figure of a run: drawn by the run's plot worker while one is active
    (:func:`.render.rendering`; its arguments are pickled: plain data, arrays, paths), else
    at once; not at all where the run draws no figures (``train.figures = false``).
    ``f.draw`` always draws at once (what the worker calls)."""
    @functools.wraps(draw)
    def ask(*args: Any, **kwargs: Any) -> None:
        if not render.drawing():
            return
        renderer = render.active()
        if renderer is None:
            draw(*args, **kwargs)
        else:
            renderer.submit(draw.__name__, args, kwargs)

    ask.draw = draw  # type: ignore[attr-defined]
    return ask


# (left, bottom, right, top, gap between panels) in inches, for plots whose labels are short
# and known: numbers, "loss", "epoch", a metric family's name
RUN_MARGINS = (0.85, 0.55, 0.2, 0.4, 0.25)


def save(fig, path: Path, margins: Optional[Tuple[float, ...]] = None) -> None:
    """Write ``fig`` as a 100-dpi PNG and close it. ``margins`` (left, bottom, right, top,
    gap) in inches place the panels (one column) directly; without them every label is
    measured first (``tight_layout``), which costs about as much as drawing the figure
    (0.15 s of a 0.35 s plot here): figures with arbitrary labels (tokens, class names,
    dates) measure, the run's own loss and metric plots do not."""
    if margins is None:
        fig.tight_layout()
    else:
        left, bottom, right, top, gap = margins
        w, h = fig.get_size_inches()
        rows = len(fig.axes)
        panel = (h - bottom - top - (rows - 1) * gap) / rows
        fig.subplots_adjust(left=left / w, bottom=bottom / h, right=1 - right / w, top=1 - top / h,
                            hspace=gap / panel)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


@run_plot
def plot_losses(history: List[Dict[str, Any]], path: Path, unit: str = "epoch") -> None:
    """Training and validation loss per round, log scale when losses are positive."""
    fig, ax = pyplot().subplots(figsize=(8, 4.5))
    rounds = [row["round"] for row in history]
    for key, label in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax.plot(rounds, values, label=label)
    ax.set_xlabel(unit)
    ax.set_ylabel("loss")
    if all((row.get("train_loss") or 0) > 0 for row in history):
        ax.set_yscale("log")
    ax.set_title("Training and validation loss", y=1.0)  # y: no search for a place (RUN_MARGINS)
    ax.legend()
    save(fig, path, RUN_MARGINS)


@run_plot
def plot_metric_families(history: List[Dict[str, Any]], path: Path, unit: str = "epoch") -> None:
    """One panel per family of training metrics other than the loss (``train_fitness_best``
    and ``train_fitness_mean`` share the panel "fitness"; ``train_diversity`` has its own),
    whatever algorithm wrote them. A family constant over the whole run (a fixed learning
    rate) is stated in the title, not drawn. Writes nothing when there are none."""
    families: Dict[str, List[str]] = {}
    for row in history:
        for key, value in row.items():
            if key.startswith("train_") and key != "train_loss" and isinstance(value, (int, float)):
                family = key[len("train_"):].split("_")[0]
                if key not in families.setdefault(family, []):
                    families[family].append(key)
    if not families:
        return
    seen = {key: {row[key] for row in history if isinstance(row.get(key), (int, float))}
            for keys in families.values() for key in keys}
    constant = {key: next(iter(v)) for key, v in seen.items() if len(v) == 1}
    varying = {f: keys for f, keys in families.items() if not all(k in constant for k in keys)}
    if varying:
        families = varying
    notes = [f"{k[len('train_'):]} = {constant[k]:.4g}" for k in constant
             if not any(k in keys for keys in families.values())]
    fig, axes = pyplot().subplots(len(families), 1, figsize=(8, 2.6 * len(families)), squeeze=False, sharex=True)
    for ax, (family, keys) in zip(axes[:, 0], families.items()):
        for key in keys:
            points = [(row["round"], row[key]) for row in history if isinstance(row.get(key), (int, float))]
            ax.plot([r for r, _ in points], [v for _, v in points], label=key[len("train_"):])
        values = [row[k] for row in history for k in keys if isinstance(row.get(k), (int, float))]
        if values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")
        ax.set_ylabel(family)
        ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel(unit)
    axes[0, 0].set_title(f"Training metrics per {unit}" + (f" ({', '.join(notes)} throughout)" if notes else ""), y=1.0)
    save(fig, path, RUN_MARGINS)


@run_plot
def plot_attention(path: Path, examples: List[Any]) -> None:
    """Attention heatmaps, one panel per example: ``(weights (T, S), source tokens (S),
    output tokens (T))``; row t shows where output step t looked in the source (colours
    scaled to each panel's largest weight, shown on its colour bar)."""
    fig, axes = pyplot().subplots(1, len(examples), figsize=(3.2 * len(examples), 3.4), squeeze=False)
    for ax, (w, src, out) in zip(axes[0], examples):
        image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(float(w.max()), 1e-12), aspect="auto")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(len(src)), [str(t) for t in src], fontsize=7, rotation=90)
        ax.set_yticks(range(len(out)), [str(t) for t in out], fontsize=7)
        ax.set_xlabel("source")
    axes[0][0].set_ylabel("output")
    fig.suptitle("Attention weights")
    save(fig, path)


@run_plot
def plot_forecast(path: Path, rows: np.ndarray, truth: np.ndarray, one_step, recursive,
                  names: Sequence[str], title: str, time=None) -> None:
    """Truth (R, C) vs one-step (rows, values) and recursive (rows, values, interval) or
    None, the interval (lower, upper) or None; ``time``: the whole series' date labels,
    shown on the x axis instead of row numbers."""
    shown = min(len(names), 4)  # more panels than this stop being readable
    fig, axes = pyplot().subplots(shown, 1, figsize=(12, 3.5 * shown), squeeze=False)
    for c, ax in enumerate(axes[:, 0]):
        ax.plot(rows, truth[:, c], label="true values", color="black", lw=1)
        ax.plot(one_step[0], one_step[1][:, c], label="one-step predictions", lw=1)
        if recursive is not None:
            line, = ax.plot(recursive[0], recursive[1][:, c], label="recursive forecast", lw=1)
            if len(recursive) > 2 and recursive[2] is not None:
                lo, hi = recursive[2]
                ax.fill_between(recursive[0], lo[:, c], hi[:, c], color=line.get_color(), alpha=0.2,
                                label="prediction interval")
        ax.set_ylabel(names[c])
        ax.legend(loc="upper right")
    axes[0, 0].set_title(title)
    if time is not None and len(rows):
        ticks = np.linspace(rows[0], rows[-1], min(6, len(rows))).astype(int)
        for ax in axes[:, 0]:
            ax.set_xticks(ticks, [str(time[t]) for t in ticks], fontsize=8)
        axes[-1, 0].set_xlabel("date")
    else:
        axes[-1, 0].set_xlabel("time step (row)")
    save(fig, path)


@run_plot
def plot_accepted_by_n(ns: List[int], ok: List[bool], max_n: int, path: Path, title: str = "") -> None:
    """A formal-language run: accepted (1) or not (0) for every n, the training range shaded."""
    fig, ax = pyplot().subplots(figsize=(7, 2.4))
    ax.axvspan(ns[0], max_n, color="0.9", label="trained on")
    ax.plot(ns, [int(a) for a in ok], drawstyle="steps-mid", lw=1)
    ax.set(xlabel="n", ylabel="accepted", ylim=(-0.1, 1.1), title=title)
    ax.legend(loc="lower left")
    save(fig, path)


@run_plot
def plot_confusion(path: Path, m: np.ndarray, classes: List[str], split: str) -> None:
    """Confusion matrix ``m`` (C, C) of counts, rows true and columns predicted; colours are
    each true class's fractions, the cells show the counts (up to 30 classes)."""
    C = len(classes)
    size = min(4 + 0.45 * C, 16)
    fig, ax = pyplot().subplots(figsize=(size, size))
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if C <= 30:
        for i in range(C):
            for j in range(C):
                ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(C), classes, rotation=90)
        ax.set_yticks(range(C), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({split} split; colour: fraction of the true class)")
    save(fig, path)
