"""The plot worker: a run's figures are drawn in another process, and nothing is lost to it."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rnntrain.reporting import plots, render

HISTORY = [{"round": r, "train_loss": 1.0 / r, "val_loss": 1.5 / r, "train_lr": 1e-3} for r in range(1, 6)]
PNG = b"\x89PNG\r\n\x1a\n"


def test_the_worker_draws_a_runs_figures_and_they_are_on_disk_when_rendering_ends(tmp_path):
    with render.rendering() as renderer:
        assert renderer is not None and renderer.proc is not None
        plots.plot_losses(HISTORY, tmp_path / "loss.png")
        plots.plot_metric_families(HISTORY, tmp_path / "metrics.png")
        assert renderer.pending  # asked for, not drawn here
    assert (tmp_path / "loss.png").read_bytes().startswith(PNG)
    assert (tmp_path / "metrics.png").read_bytes().startswith(PNG)
    assert not renderer.pending


def test_the_workers_figure_is_the_figure_a_fresh_process_draws(tmp_path):
    with render.rendering():
        plots.plot_losses(HISTORY, tmp_path / "worker.png")
    here = (f"from rnntrain.reporting import plots; "
            f"plots.plot_losses.draw({HISTORY!r}, {str(tmp_path / 'here.png')!r})")
    subprocess.run([sys.executable, "-c", here], check=True, timeout=120)
    assert (tmp_path / "worker.png").read_bytes() == (tmp_path / "here.png").read_bytes()


def test_runs_in_one_process_share_one_worker_and_a_failed_figure_leaves_no_stale_reply(tmp_path):
    with render.rendering() as first:
        plots.plot_losses(HISTORY, tmp_path / "a.png")
    with pytest.raises(FileNotFoundError):
        with render.rendering() as second:
            plots.plot_losses(HISTORY, tmp_path / "missing" / "b.png")
            plots.plot_losses(HISTORY, tmp_path / "c.png")  # drawn after the failed one
    assert second is first and first.proc is not None
    with render.rendering() as third:
        plots.plot_losses(HISTORY, tmp_path / "d.png")
    assert third is first
    assert all((tmp_path / f).exists() for f in ("a.png", "c.png", "d.png"))


def test_a_figures_error_is_raised_in_the_run_with_the_workers_traceback(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        with render.rendering():
            plots.plot_losses(HISTORY, tmp_path / "missing" / "loss.png")
    assert "in the plot worker" in str(caught.value.__cause__)


def test_a_dead_worker_leaves_the_figures_to_the_run(tmp_path):
    with render.rendering() as renderer:
        plots.plot_losses(HISTORY, tmp_path / "before.png")  # sent, never answered
        renderer.proc.kill()
        renderer.proc.wait()
        plots.plot_losses(HISTORY, tmp_path / "after.png")  # cannot be sent
    assert (tmp_path / "before.png").read_bytes().startswith(PNG)
    assert (tmp_path / "after.png").read_bytes().startswith(PNG)


def test_without_a_worker_figures_are_drawn_where_they_are_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNTRAIN_PLOT_WORKER", "0")
    with render.rendering() as renderer:
        assert renderer is None
        plots.plot_losses(HISTORY, tmp_path / "loss.png")
        assert (tmp_path / "loss.png").exists()


def test_a_run_never_imports_matplotlib_and_its_run_directory_has_every_figure(tmp_path):
    script = textwrap.dedent(f"""
        import sys, rnntrain
        rnntrain.train(rnntrain.load_config(overrides=["train.epochs=2", "threads=1"]), {str(tmp_path / "run")!r})
        print(sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib")[:3])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    run = tmp_path / "run"
    for name in ("loss.png", "train_metrics.png", "forecast.png"):
        assert (run / name).read_bytes().startswith(PNG), name
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3  # the page waited for the figures


def test_a_run_without_figures_draws_none_starts_no_worker_and_writes_the_same_numbers(tmp_path):
    """--no-figures (train.figures = false, for sweeps and CI): no PNG, no plot worker, a
    report.html without plots, and every metric of the run with figures."""
    import csv
    import json

    import rnntrain
    script = textwrap.dedent(f"""
        import sys
        from rnntrain.cli.main import main
        from rnntrain.reporting import render
        code = main(["train", "--no-figures", "--epochs", "2", "--set", "threads=1", "--quiet",
                     "--out", {str(tmp_path / "bare")!r}])
        print(code, render._worker is None, [m for m in sys.modules if m.split(".")[0] == "matplotlib"][:1])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 True []"
    bare, drawn = tmp_path / "bare", tmp_path / "drawn"
    rnntrain.train(rnntrain.load_config(overrides=["train.epochs=2", "threads=1"]), drawn)
    assert not list(bare.rglob("*.png")) and (drawn / "loss.png").exists()
    assert "<img" not in (bare / "report.html").read_text() and "<img" in (drawn / "report.html").read_text()

    summaries = [json.loads((run / "summary.json").read_text()) for run in (bare, drawn)]
    assert "plot" not in summaries[0] and summaries[1]["plot"] == "forecast.png"  # names only a drawn figure

    def numbers(run, summary):
        rows = list(csv.DictReader((run / "metrics.csv").open()))
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows], \
            {k: v for k, v in summary.items() if k not in ("seconds", "plot")}
    assert numbers(bare, summaries[0]) == numbers(drawn, summaries[1])


def test_a_metric_constant_over_the_run_is_stated_in_the_title_not_drawn(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, path, margins=None: drawn.append(fig))
    history = [{"round": r, "train_lr": 1e-3, "train_grad_norm": 1.0 / r, "train_clipped_fraction": 0.0}
               for r in range(1, 6)]
    plots.plot_metric_families.draw(history, tmp_path / "m.png")
    (fig,) = drawn
    assert [ax.get_ylabel() for ax in fig.axes] == ["grad"]
    assert "lr = 0.001" in fig.axes[0].get_title() and "clipped_fraction = 0" in fig.axes[0].get_title()
    plots.pyplot().close(fig)


def test_relative_paths_are_the_runs_even_when_it_has_moved_since_the_worker_started(tmp_path, monkeypatch):
    with render.rendering():  # the worker exists, started wherever the session was
        pass
    monkeypatch.chdir(tmp_path)
    with render.rendering():
        plots.plot_losses(HISTORY, Path("loss.png"))
    assert (tmp_path / "loss.png").read_bytes().startswith(PNG)


def test_runs_in_two_threads_at_once_each_get_their_figures(tmp_path):
    import threading

    def run(name):
        with render.rendering():
            plots.plot_losses(HISTORY, tmp_path / f"{name}.png")
            plots.plot_losses(HISTORY, tmp_path / f"{name}-2.png")

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all((tmp_path / f"t{i}{s}.png").read_bytes().startswith(PNG) for i in range(3) for s in ("", "-2"))
