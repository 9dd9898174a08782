"""Population methods: rnntrain's GA and PSO against pygad (torchga) and pyswarms, same model and data.

Model: ``torch.nn.RNN(1, 16)`` + ``Linear(16, 1)`` (rnntrain: the same Elman RNN, hidden 16,
linear readout); data: the seed's sine windows (1000 points, window 20, 80 % training).
Population 50, 100 generations (quick: 20), three rounds alternating the tools. Reports
seconds per generation and the best training MSE; the FLOP rate of rnntrain's population evaluation as a fraction of
``torch.mm``'s measured in the same run; and time per generation as P grows.
"""
from __future__ import annotations

import statistics
import time
from typing import Dict, List

import numpy as np
import torch

import rnntrain
from rnntrain.training import Trainer

HIDDEN, POP = 16, 50


def _config(algo: str, population: int, generations: int):
    return rnntrain.load_config(base={"model.hidden": HIDDEN, "algorithm.name": algo,
                                      "algorithm.population": population, "train.epochs": generations})


def _rnntrain(algo: str, population: int, generations: int) -> Dict[str, float]:
    trainer = Trainer(_config(algo, population, generations))
    alg = trainer.algorithm
    alg.run_round()  # warm-up (and generation 0 of the GA)
    start = time.perf_counter()
    for _ in range(generations - 1):
        alg.run_round()
    seconds = (time.perf_counter() - start) / (generations - 1)
    return {"s_per_gen": seconds, "mse": alg.best_loss, "evaluations": alg.evaluations}


def _data():
    task = Trainer(_config("guess", 2, 1)).task
    b = next(task.batches("train", 10 ** 6, generator=torch.Generator().manual_seed(0)))
    return b.inputs, b.targets


class _TorchModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(1, HIDDEN, batch_first=True)
        self.fc = torch.nn.Linear(HIDDEN, 1)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


def _pygad(generations: int) -> Dict[str, float]:
    import pygad
    import pygad.torchga as torchga

    x, y = _data()
    model = _TorchModel()
    tga = torchga.TorchGA(model=model, num_solutions=POP)
    loss_fn = torch.nn.MSELoss()

    def fitness(ga, solution, idx):
        w = torchga.model_weights_as_dict(model=model, weights_vector=solution)
        model.load_state_dict(w)
        with torch.no_grad():
            return 1.0 / (float(loss_fn(model(x), y)) + 1e-8)

    ga = pygad.GA(num_generations=generations, num_parents_mating=10, initial_population=tga.population_weights,
                  fitness_func=fitness, random_seed=0, suppress_warnings=True, keep_elitism=2)
    start = time.perf_counter()
    ga.run()
    seconds = (time.perf_counter() - start) / generations
    _, best, _ = ga.best_solution()
    return {"s_per_gen": seconds, "mse": 1.0 / best - 1e-8, "evaluations": POP * generations}


def _pyswarms(generations: int) -> Dict[str, float]:
    import pyswarms

    x, y = _data()
    model = _TorchModel()
    n = sum(p.numel() for p in model.parameters())

    def f(particles: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for p in particles:
                torch.nn.utils.vector_to_parameters(torch.as_tensor(p, dtype=torch.float32), model.parameters())
                out.append(float(((model(x) - y) ** 2).mean()))
        return np.array(out)

    np.random.seed(0)
    opt = pyswarms.single.GlobalBestPSO(n_particles=POP, dimensions=n,
                                        options={"c1": 1.49618, "c2": 1.49618, "w": 0.7298},
                                        init_pos=np.random.uniform(-0.5, 0.5, (POP, n)))
    start = time.perf_counter()
    cost, _ = opt.optimize(f, iters=generations, verbose=False)
    return {"s_per_gen": (time.perf_counter() - start) / generations, "mse": float(cost),
            "evaluations": POP * generations}


def _flop_fraction(rounds: int = 9) -> str:
    """The population evaluation's FLOP rate as a fraction of ``torch.mm``'s (1024 x 1024), at
    1 and 2 threads. The two are timed in turn, four of each a round, and the fastest of each
    taken: this machine's speed drifts by tens of percent within a minute, so a ratio of two
    times taken apart measures the drift (and the first call after the other runs from cold
    caches, as no generation of a population method does)."""
    x, _ = _data()
    N, L, F, H = x.shape[0], x.shape[1], x.shape[2], HIDDEN
    # per window and step: W_hh h (2H^2), W_ih x (2HF), two biases, the sum, tanh (1 each per
    # unit: 4H); per window, the linear readout (2H + 1)
    flops = POP * N * (L * (2 * H * H + 2 * H * F + 4 * H) + 2 * H + 1)
    trainer = Trainer(_config("pso", POP, 2))
    ev, pop = trainer.algorithm.evaluator, trainer.algorithm.x
    a = torch.randn(1024, 1024)
    threads = torch.get_num_threads()
    parts = []
    for n in sorted({1, threads}):
        torch.set_num_threads(n)
        ev(pop), a @ a
        best_ev = best_mm = float("inf")
        for _ in range(rounds):  # a few of each in turn: the first after the other is cold
            for _ in range(4):
                t = time.perf_counter()
                ev(pop)
                best_ev = min(best_ev, time.perf_counter() - t)
            for _ in range(4):
                t = time.perf_counter()
                a @ a
                best_mm = min(best_mm, time.perf_counter() - t)
        rate, mm = flops / best_ev, 2 * 1024 ** 3 / best_mm
        parts.append(f"{n} thread{'s' if n > 1 else ''}: {best_ev * 1e3:.1f} ms, {rate / 1e9:.1f} GFLOP/s "
                     f"= {rate / mm:.1%} of torch.mm ({mm / 1e9:.1f} GFLOP/s)")
    torch.set_num_threads(threads)
    return (f"Population evaluation (P = {POP}, {N} windows x {L} steps, {flops / 1e9:.2f} GFLOP; "
            f"torch.mm 1024 x 1024 timed in turn): " + "; ".join(parts) + ".")


def _bidirectional(repeats: int = 3) -> str:
    """The labelled tasks' default core, a bidirectional GRU, on the built-in classification
    set: one evaluation of P = 50 networks by the population loop (each direction, the
    backward one on the reversed sequences) against vmap of the whole model (the evaluator's
    reference path), interleaved medians, and their largest loss difference."""
    config = rnntrain.load_config(base={"task.kind": "classify", "task.size": 200, "algorithm.name": "ga",
                                        "algorithm.population": POP, "train.epochs": 2})
    trainer = Trainer(config)
    ev, pop = trainer.algorithm.evaluator, trainer.algorithm.pop
    ev.fast = True
    fast = ev(pop)[0]
    ev.fast = False
    plain = ev(pop)[0]
    times: Dict[bool, List[float]] = {True: [], False: []}
    for _ in range(repeats):
        for mode in (True, False):
            ev.fast = mode
            t = time.perf_counter()
            ev(pop)
            times[mode].append(time.perf_counter() - t)
    ev.fast = True
    a, b = statistics.median(times[True]), statistics.median(times[False])
    core = trainer.model.rnn
    layers = f"{core.num_layers} layer{'s' if core.num_layers > 1 else ''}"
    return (f"Bidirectional {core.cell.name.upper()} ({layers} of {core.hidden_size} units a direction), "
            f"{trainer.task.name} task's built-in set ({ev.examples} training sequences), P = {POP}: "
            f"one evaluation {a * 1e3:.0f} ms by "
            f"the population loop, {b * 1e3:.0f} ms by vmap of the whole model ({b / a:.1f}x); largest loss "
            f"difference {float((fast - plain).abs().max()):.1e}.")


PAIRS = (("GA", "ga", "pygad GA (torchga)", _pygad), ("PSO", "pso", "pyswarms GlobalBestPSO", _pyswarms))


def main(quick: bool = False) -> str:
    generations, rounds = (20, 3) if quick else (100, 3)
    rows: List[str] = ["| method | s / generation (median of rounds) | best training MSE | evaluations |",
                       "|---|---|---|---|"]
    # Each round runs every method once, rnntrain's just before its peer's, and a speed-up is
    # the median over rounds of the ratio within a round: this machine's speed drifts by tens
    # of percent within minutes, which ratios of runs far apart in time would measure instead.
    times: Dict[str, List[float]] = {}
    results: Dict[str, Dict[str, float]] = {}
    ratios: Dict[str, List[float]] = {}
    for _ in range(rounds):
        for label, algo, peer, fn in PAIRS:
            mine = _rnntrain(algo, POP, generations)
            results[f"rnntrain {label}"] = mine
            times.setdefault(f"rnntrain {label}", []).append(mine["s_per_gen"])
            try:
                theirs = fn(generations)
            except ImportError:
                results.setdefault(peer, {})
                continue
            results[peer] = theirs
            times.setdefault(peer, []).append(theirs["s_per_gen"])
            ratios.setdefault(label, []).append(theirs["s_per_gen"] / mine["s_per_gen"])
    for name, r in results.items():
        if not r:
            rows.append(f"| {name} | not installed (pip install rnntrain[bench]) | | |")
            continue
        rows.append(f"| {name} | {statistics.median(times[name]) * 1e3:.1f} ms | {r['mse']:.3g} | {r['evaluations']} |")
    lines = [f"Population {POP}, {generations} generations, Elman RNN hidden {HIDDEN} + linear readout, "
             f"seed sine windows; torch {torch.__version__}, {torch.get_num_threads()} threads; "
             f"{rounds} rounds, each tool's run next to rnntrain's.", ""] + rows
    if ratios:
        lines.append("\nSpeed-up per generation (median of the rounds' ratios; range): " + ", ".join(
            f"{label} {statistics.median(v):.1f}x over {'pygad' if label == 'GA' else 'pyswarms'} "
            f"({min(v):.1f}-{max(v):.1f}x)" for label, v in ratios.items()) + ".")
    lines += ["", _flop_fraction(), "", _bidirectional(), "", "| P | ms / generation (rnntrain PSO) |", "|---|---|"]
    for P in ((10, 100, 500) if quick else (10, 50, 200, 500, 1000, 2000)):
        lines.append(f"| {P} | {_rnntrain('pso', P, 4)['s_per_gen'] * 1e3:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(quick=True))
