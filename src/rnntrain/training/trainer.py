"""The trainer: one loop for every algorithm.

How a round flows::

    task.batches(...) --> algorithm.run_round() --> train metrics
                                         task.evaluate(model, "val") --> val metrics
    metrics.csv row, early stopping, checkpoint (atomic), progress, callbacks

The trainer never looks at which algorithm runs: it asks it for rounds, saves its
``state_dict`` and honours its ``stop_reason``. Resuming restores the model, the
algorithm's state, every RNG and the progress counters, so an interrupted-then-resumed
run ends with exactly the weights of an uninterrupted one.
"""
from __future__ import annotations

import copy
import math
import platform
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

import torch
from torch.nn.utils import parameters_to_vector

from ..algorithms import ALGORITHMS, Context, get_algorithm
from ..config.run import RunConfig
from ..config.schema import check
from ..errors import UserError
from ..models import SequenceModel
from ..parallel import Distributed, is_main_process
from ..reporting.compare import run_report
from ..reporting.plots import plot_losses, plot_metric_families
from ..reporting.render import drawn, rendering
from ..tasks.base import HIGHER_IS_BETTER, Task
from .build import auto_threads, make_model, make_task, resolve_device
from .checkpoint import detached, load_checkpoint, save_checkpoint
from .interrupts import DefaultAction, Interrupts
from .loaded import load_weights
from .monitors import build_monitors
from .progress import Progress
from .run_dir import RunDir, data_fingerprints

RoundCallback = Callable[[int, Dict[str, Any]], None]
# metrics.csv is written after a round whenever a checkpoint is and when rounds are long (a
# second or more), else at most this many seconds after the round: a write every round was a
# noticeable share of a short round (a GA generation), and a resumed run rewrites the rows
# after its checkpoint anyway
METRICS_SECONDS = 1.0


@dataclass
class RunResult:
    """What a finished run leaves in memory (and, when ``out_dir`` is set, on disk)."""

    config: RunConfig
    model: SequenceModel
    task: Task
    history: List[Dict[str, Any]]
    summary: Dict[str, Any]
    out_dir: Optional[Path] = None


class Trainer:
    """Runs ``config`` into ``out_dir`` (or in memory when ``out_dir`` is None)."""

    def __init__(self, config: RunConfig, out_dir: Union[str, Path, None] = None, *,
                 progress: Optional[str] = "off", callbacks: Iterable[RoundCallback] = ()) -> None:
        self.config = config
        self.run = RunDir(out_dir) if out_dir is not None else None
        self.progress_mode = progress
        self.callbacks = list(callbacks)
        self.task = make_task(config)
        algo_cls = get_algorithm(config.algorithm_name)
        # the processes training this run (torchrun): joined before anything else, so every
        # process sees the same refusals; the group lasts as long as the process
        self.dist = Distributed.from_environment(resolve_device(config.device))
        if self.dist.active and algo_cls.parallel is None:
            sharing = ", ".join(sorted(n for n, a in ALGORITHMS.items() if a.parallel))
            raise UserError(f"{algo_cls.name} trains in one process; run it without torchrun, or use an "
                            f"algorithm that shares its work among processes ({sharing})")
        # the family says whether it can train this task and model, before anything is built
        refusal = algo_cls.why_not(self.task.spec, config.model, config.algorithm)
        if refusal:
            raise UserError(refusal)
        self.model = make_model(config, self.task.spec)
        if self.dist.rank:  # training noise (dropout masks) of its own in every other process
            torch.manual_seed(config.seed + 1_000_003 * self.dist.rank)
        # One generator for all of the algorithm's randomness (data order, noise, populations).
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.algorithm = algo_cls(Context(self.model, self.task, config.optim, config.train.epochs,
                                          config.train.batch_size, self.generator, dist=self.dist),
                                  config.algorithm)
        # [monitor] measurements (e.g. gradient flow), called like round callbacks but before
        # the round's checkpoint, so a kill never loses a record the checkpoint claims (a
        # round redone after a kill rewrites its own record); every process measures, only
        # the one that writes the run directory writes their files
        self.monitors = build_monitors(config.monitor, self.model, self.task, out_dir if self.writes else None)
        self.history: List[Dict[str, Any]] = []
        self.round = 0
        self.best: Dict[str, Any] = {"round": 0, "score": float("inf"), "model": None}
        self.diverged: Optional[int] = None  # the round whose loss or weights stopped being finite
        self.data_files = data_fingerprints(config.task)  # {path: sha256}: resume checks them
        self.bad_rounds = 0
        self._told = False  # warned that train.select names no validation metric
        self.stop_reason: Optional[str] = None
        self.elapsed = 0.0
        self._saved_at = time.monotonic()  # when the last checkpoint was written
        self._unsaved: Optional[Dict[str, Any]] = None  # the last finished round, when not yet saved
        self._saved_round = -1  # the round the checkpoint on disk holds
        self._between = False  # between the end of a round's bookkeeping and the next round
        self._ranks_rng: List[Dict[str, Any]] = []  # every process's RNG states (torchrun)

    # -- checkpoint ------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"format": 1, "round": self.round, "model": self.model.state_dict(), "data": self.data_files,
                "algorithm": self.algorithm.state_dict(),
                "rng": self._rng_states(),
                "history": self.history, "best": self.best, "bad_rounds": self.bad_rounds,
                "stop_reason": self.stop_reason, "elapsed": self.elapsed,
                "task": self.task.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for path, digest in state.get("data", {}).items():  # (runs from before data hashes: none)
            now = self.data_files.get(path)
            check(now is None or now == digest,
                  f"{path} changed since this run started (its SHA-256 differs), so resuming would train "
                  f"on other data; restore the file, or start a new run")
        load_weights(self.model, state["model"])
        self.algorithm.load_state_dict(state["algorithm"])
        rng = state["rng"]
        ranks = rng.get("ranks", [rng])
        check(len(ranks) == self.dist.world,
              f"this run was trained by {len(ranks)} process(es) and is resumed by {self.dist.world}: "
              f"resume it with torchrun --nproc_per_node {len(ranks)}" if len(ranks) > 1 else
              "this run was trained by one process: resume it without torchrun")
        torch.set_rng_state(ranks[self.dist.rank]["torch"])
        self.generator.set_state(ranks[self.dist.rank]["generator"])
        self.round, self.history = state["round"], list(state["history"])
        self.best, self.bad_rounds = state["best"], state["bad_rounds"]
        self.stop_reason, self.elapsed = state["stop_reason"], state["elapsed"]
        self._saved_round = self.round

    def _rng_states(self) -> Dict[str, Any]:
        """This process's RNG states; with several processes, every process's (gathered at
        the end of each round by :meth:`_gather_rng`), so a resume restores each its own."""
        mine = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if not self.dist.active:
            return mine
        return {**mine, "ranks": self._ranks_rng}

    def _gather_rng(self) -> None:
        if self.dist.active:  # every process, every round: a collective no process may skip
            self._ranks_rng = self.dist.gather({"torch": torch.get_rng_state(),
                                                "generator": self.generator.get_state()})

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory (rank 0 only under torch.distributed)."""
        return self.run is not None and is_main_process()

    def save(self, state: Optional[Dict[str, Any]] = None) -> None:
        if self.writes:
            save_checkpoint(self.run.checkpoint, state or self.state_dict())
            self.run.commit()  # the run an --overwrite replaces goes once this one can resume
        self._saved_round = self.round if state is None else state["round"]
        self._saved_at, self._unsaved = time.monotonic(), None

    def _write_metrics(self) -> None:
        if self.writes:
            self.run.write_metrics(self.history)
        self._metrics_at = time.monotonic()

    def _keep(self, in_memory: bool) -> None:
        """After a round: its checkpoint when one is due (train.checkpoint_every; the first
        round, the last, a stop), else, when ``in_memory`` (a signal would interrupt the next round
        at once: :mod:`.interrupts`), a copy in memory that Ctrl-C or SIGTERM saves."""
        every, done = self.config.train.checkpoint_every, self.round >= self.config.train.epochs
        if every == 0 or self.round == 1 or done or self.stop_reason is not None \
                or time.monotonic() - self._saved_at >= every:
            self.save()
        elif self.writes and in_memory:  # history rows and the best weights are replaced, never changed: shared
            state, shared = self.state_dict(), {"history": list(self.history), "best": dict(self.best)}
            self._unsaved = {**detached({k: v for k, v in state.items() if k not in shared}), **shared}
        else:
            self._unsaved = None

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> RunResult:
        progress = Progress(self.config.train.epochs, self.round, self.algorithm.unit, self.progress_mode)
        threads = torch.get_num_threads()
        wanted = self.config.threads or auto_threads(self.model, self.algorithm.sequences_per_step())
        if wanted:  # for this run only: restored below, so runs in one process don't leak
            torch.set_num_threads(wanted)
        if self.round:  # resumed: the rows after the checkpoint's round go
            self._write_metrics()
        self._saved_at = self._metrics_at = time.monotonic()
        self._good = parameters_to_vector(self.model.parameters()).detach()  # the weights a round starts from
        try:
            # the run's figures are drawn by a worker that imports matplotlib meanwhile
            figures = rendering(self.writes, figures=self.config.train.figures)
            with Interrupts(enabled=not self.dist.active) as interrupts, figures:
                while self.round < self.config.train.epochs and self.stop_reason is None:
                    if not self._round(interrupts, progress):
                        break
                if self._unsaved is not None:  # a diverged round ended the loop before the round's save
                    self.save(self._unsaved)
                self._write_metrics()
                interrupts.defer = False
                interrupts.deliver_pending()
                return self.finish()
        except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM: the last finished round becomes the checkpoint
            if self._between and self._saved_round != self.round:
                self.save()  # interrupted after a round ended (a held signal, a callback)
            elif not self._between and self._unsaved is not None:
                self.save(self._unsaved)  # interrupted inside a round: the copy of the one before
            self._write_metrics()
            if isinstance(stop, DefaultAction):
                stop.take()  # SIGTERM with no handler of the caller's: the process ends by it
            raise
        finally:
            progress.close()
            torch.set_num_threads(threads)

    def _round(self, interrupts: Interrupts, progress: Progress) -> bool:
        """One round and its bookkeeping; False when it diverged (nothing of it kept)."""
        t0 = time.perf_counter()
        self._between = False
        # schedules over training (scheduled sampling), data the model makes (rollouts)
        self.task.start_round(self.round, self.model)
        work = self.algorithm.ctx.work.total
        train = self.algorithm.run_round(progress.step)
        work = self.algorithm.ctx.work.total - work
        if self.dist.active:  # every process's work (each counts its own share: rows, individuals)
            work = float(self.dist.sum_(torch.tensor(work, dtype=torch.float64)))
        if self._diverged(train):
            return False
        every, total = self.config.train.eval_every, self.config.train.epochs
        due = every == 1 or self.round == 0 or (self.round + 1) % every == 0 or self.round + 1 == total
        val = self.task.evaluate(self.model, "val") if due else {}
        self.round += 1
        seconds = time.perf_counter() - t0
        self.elapsed += seconds
        row: Dict[str, Any] = {"round": self.round}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        row["seconds"] = self.elapsed
        # forward-step equivalents so far (algorithms/base.py: Work), every family alike
        row["work"] = (self.history[-1].get("work", 0.0) if self.history else 0.0) + work
        self.history.append(row)
        if due:
            self._early_stopping(row)
        self.stop_reason = self.stop_reason or self.algorithm.stop_reason()
        for monitor in self.monitors:
            monitor(self.round, row)
        self._gather_rng()
        self._between = True  # the round is finished: its state is consistent from here
        # a signal during the next round waits for its end when rounds are short, so no copy
        # of this round is needed for it (training/interrupts.py)
        interrupts.defer = interrupts.can_defer(seconds)
        self._keep(in_memory=not interrupts.defer)
        # metrics.csv: the new rows at most METRICS_SECONDS late, and with every checkpoint
        if not interrupts.defer or self._saved_round == self.round or \
                time.monotonic() - self._metrics_at >= METRICS_SECONDS:
            self._write_metrics()
        progress.end_round(row)
        for callback in self.callbacks:
            callback(self.round, row)
        interrupts.deliver_pending()
        return True

    def _diverged(self, train: Dict[str, Any]) -> bool:
        """Whether this round's loss or weights stopped being finite. If so the model gets
        back the weights it started the round with (``self._good``, flat), nothing of the
        round is saved (the checkpoint stays a good one: the last round's when its copy was
        kept), and the run stops saying why. Finite weights become the next round's
        ``_good``: one copy a round serves both purposes."""
        loss = train.get("loss", 0.0)
        now = parameters_to_vector(self.model.parameters()).detach()  # a copy (torch.cat)
        if math.isfinite(loss) and bool(now.isfinite().all()):
            self._good = now
            return False
        with torch.no_grad():
            params = list(self.model.parameters())
            for p, g in zip(params, self._good.split([p.numel() for p in params])):
                p.copy_(g.view_as(p))
        self.diverged = self.round + 1
        self.stop_reason = (f"diverged in round {self.round + 1}: the training loss became {loss:g} "
                            f"(or a weight stopped being finite); kept the weights of round {self.round}. "
                            f"Lower the learning rate (optim.lr), clip gradients (optim.clip), or look "
                            f"for huge values in the data")
        return True

    @property
    def selection(self) -> str:
        """The validation metric that decides the best round (the highest for the metrics in
        ``HIGHER_IS_BETTER``, else the lowest)."""
        chosen = self.config.train.select
        return self.task.selection if chosen == "auto" else chosen

    def _early_stopping(self, row: Dict[str, Any]) -> None:
        key = f"val_{self.selection}"
        if key not in row and "val_loss" in row and not self._told:
            known = ", ".join(k[4:] for k in row if k.startswith("val_"))
            warnings.warn(f"train.select = '{self.selection}' is not a validation metric of this task "
                          f"({known}); the best round is chosen by the loss", stacklevel=2)
            self._told = True
        score = row.get(key, row.get("val_loss", row.get("train_loss")))
        if key in row and self.selection in HIGHER_IS_BETTER and score is not None:
            score = -score  # the best round has the lowest score
        if score is None or score != score:  # NaN never counts as an improvement
            self.bad_rounds += 1
        elif score < self.best["score"] - self.config.train.min_delta:
            self.best = {"round": self.round, "score": float(score),
                         "model": copy.deepcopy(self.model.state_dict())}
            self.bad_rounds = 0
        else:
            self.bad_rounds += 1
        patience = self.config.train.patience
        if patience and self.bad_rounds >= patience:
            self.stop_reason = f"early stopping: no validation improvement in {patience} rounds"

    def finish(self) -> RunResult:
        cfg = self.config
        if self.writes and self.history:  # first: the plot worker draws them while the run is scored
            plot_losses(self.history, self.run.file("loss.png"), self.algorithm.unit)
            plot_metric_families(self.history, self.run.file("train_metrics.png"), self.algorithm.unit)
        if cfg.train.restore_best and self.best["model"] is not None:
            self.model.load_state_dict(self.best["model"])
        metrics = {split: self.task.evaluate(self.model, split) for split in ("train", "val", "test")}
        summary: Dict[str, Any] = {
            "algorithm": cfg.algorithm_name, "task": cfg.task_kind, "cell": cfg.model.cell,
            "rounds": self.round, "unit": self.algorithm.unit,
            "stop_reason": self.stop_reason or f"completed {cfg.train.epochs} rounds",
            "diverged_round": self.diverged,
            "best_round": self.best["round"],
            "headline": self.task.headline,
            "selected_by": next((k for k in (f"val_{self.selection}", "val_loss", "train_loss")
                                 if any(k in r for r in self.history)), None),
            "restored_best": bool(cfg.train.restore_best and self.best["model"] is not None),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "seconds": round(self.elapsed, 3),
            "work": self.history[-1].get("work") if self.history else 0.0,
            "metrics": {k: v for k, v in metrics.items() if v},
            "environment": {"torch": torch.__version__, "python": platform.python_version(),
                            "device": cfg.device, "threads": torch.get_num_threads()},
        }
        if self.writes:
            summary.update(self.task.report(self.model, self.run.path))
            self.run.write_summary(summary)
            drawn()  # the page embeds the figures
            try:
                run_report(self.run.path)
            except Exception as e:  # the run is whole without its page: say so, never fail the run
                warnings.warn(f"report.html not written ({type(e).__name__}: {e}); "
                              f"`rnntrain report {self.run.path}` tries again", stacklevel=2)
        return RunResult(cfg, self.model, self.task, self.history, summary,
                         self.run.path if self.run else None)


def train(config: RunConfig, out_dir: Union[str, Path, None] = None, *, overwrite: bool = False,
          progress: Optional[str] = "off", callbacks: Iterable[RoundCallback] = ()) -> RunResult:
    """Train ``config`` from scratch; with ``out_dir``, write a run directory there."""
    # Build everything first: bad data or config fails before anything is written.
    trainer = Trainer(config, out_dir, progress=progress, callbacks=callbacks)
    if out_dir is None or not trainer.writes:
        return trainer.fit()
    run = RunDir(out_dir)
    with run.locked():  # one writer per run directory
        run.create(config, overwrite=overwrite)
        return trainer.fit()


def resume(out_dir: Union[str, Path], *, progress: Optional[str] = "off",
           callbacks: Iterable[RoundCallback] = ()) -> RunResult:
    """Continue the run in ``out_dir`` from its last checkpoint, with its own config."""
    run = RunDir(out_dir)
    if run.replacing():  # an --overwrite cut short: finish it, or put the old run back
        with run.locked():
            run.recover()
    run.require_run()
    config = run.read_config()
    trainer = Trainer(config, out_dir, progress=progress, callbacks=callbacks)
    with run.locked() if trainer.writes else nullcontext():  # a live run is not resumed twice
        if trainer.writes:
            run.clean_orphans()
        trainer.load_state_dict(load_checkpoint(run.checkpoint))
        return trainer.fit()
