r"""The pathological long-time-lag problems, generated fresh from a seed.

Sources (definitions as we read them; where two papers differ, ``variant`` picks one):

- **H&S**: Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", Neural Computation
  9(8), sec. 5.4 (exp. 4, adding), 5.5 (exp. 5, multiplication), 5.6 (exp. 6a/6b,
  temporal order with 2 and 3 relevant symbols).
- **M&S**: Martens & Sutskever 2011, "Learning Recurrent Neural Networks with
  Hessian-Free Optimization", ICML, sec. 5 and the supplementary material sec. 2
  (addition, multiplication, XOR, temporal order, 3-bit temporal order, random
  permutation, noiseless memorisation); the same tasks as Sutskever, Martens, Dahl &
  Hinton 2013, sec. 4 / Table 5.
- **Le**: Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of
  Rectified Linear Units", sec. 4.1 (adding problem).
- **copy**: Hochreiter & Schmidhuber 1997 sec. 5.1 as posed by Arjovsky, Shah & Bengio
  2016 ("Unitary Evolution RNNs", sec. 4.1).

The problems (T = ``length``; steps are 0-based; U = uniform)::

  adding / multiplication / xor   inputs (N, T', 2): value, marker; many-to-one, 1 output
    variant "hochreiter": value ~ U[-1, 1] (multiplication: U[0, 1]); one marker (1.0) at
        a step in [0, 10), the other in [0, T/2 - 1) (distinct); marker -1.0 at the first
        and last steps unless marked; T' ~ U{T, .., T + T/10}.
        adding target 0.5 + (X1 + X2) / 4 (a value marked at step 0 counts as 0),
        multiplication target X1 * X2.
    variant "martens": value ~ U[0, 1] (xor: a bit in {0, 1}); one marker in [0, T/10),
        the other in [T/10, T/2); T' ~ U{T, .., 11T/10}; target X1 + X2, X1 * X2 or
        X1 xor X2.
    variant "le": value ~ U[0, 1]; one marker in the first half, one in the second half;
        T' = T; target X1 + X2.
  order2 / order3 (temporal order)   inputs (N, T', 8) one-hot over a b c d X Y B E,
        many-to-one, 4 (order2) or 8 (order3) classes = the relevant symbols (X/Y) read
        as binary digits in order of appearance.
    variant "hochreiter": B at step 0, E at the last step, distractors a-d elsewhere;
        relevant symbols at t1 in [10, 20], t2 in [50, 60] (order3: t1 in [10, 20],
        t2 in [33, 43], t3 in [66, 76]); T' ~ U{100, .., 110}, ``length`` ignored.
    variant "martens": distractors a-d everywhere but at t1 in [T/10, 2T/10),
        t2 in [5T/10, 6T/10) (order3: [T/10, 2T/10), [3T/10, 4T/10), [6T/10, 7T/10));
        T' = T.
  permutation   inputs (N, T, 100) one-hot; symbol 0 or 1 at step 0, the others from
        {2..99}; many-to-one: at the last step predict the first symbol (100 classes).
  memorize5 / memorize20 / copy   inputs (N, n + T + n, K + 2) one-hot over K symbols,
        blank, trigger: n random symbols, T - 1 blanks, the trigger, n blanks; the
        target of the last n steps is the n symbols, earlier steps carry no target.
        memorize5: n = 5 bits (K = 2); memorize20: n = 10 symbols of K = 4 (20 bits);
        copy: n = 10 symbols of K = 8.

Success criteria (the papers'): a real-valued answer is wrong when its absolute error
exceeds 0.04; a class answer when its arg-max is not the target. ``evaluate`` reports
``wrong_fraction``: of test sequences (adding ... permutation) or of recall steps
(memorisation and copy; the papers count time steps there).

There is no fixed training set: an epoch is ``epoch_batches`` fresh minibatches drawn
from the algorithm's generator (so ``--resume`` continues the same stream); validation
and test sets are drawn once from the seeds ``seed + 1`` and ``seed + 2``. Sequences of
one minibatch share their length T' (one draw per batch, so no padding is needed).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config.schema import check
from .base import Batch, Task, TaskSpec, evaluating

REAL_PROBLEMS = ("adding", "multiplication", "xor")
ORDER_PROBLEMS = ("order2", "order3")
MEMORY_PROBLEMS = {"memorize5": (5, 2), "memorize20": (10, 4), "copy": (10, 8)}  # n, K
PROBLEMS = REAL_PROBLEMS + ORDER_PROBLEMS + ("permutation",) + tuple(MEMORY_PROBLEMS)
VARIANTS = ("martens", "hochreiter", "le")
TOLERANCE = 0.04  # H&S 1997 and M&S 2011: a real-valued answer is wrong beyond this error
IGNORE = -100
ORDER_SYMBOLS = "abcdXYBE"
PERMUTATION_SYMBOLS = 100


@dataclass(frozen=True)
class PathologicalConfig:
    """One pathological problem; see the module docstring for the definitions."""

    problem: str = "adding"  # adding | multiplication | xor | order2 | order3 | permutation | memorize5 | memorize20 | copy
    length: int = 100  # T: the minimal time lag scale (sequence length; blanks for memorisation)
    variant: str = "martens"  # martens (M&S 2011) | hochreiter (H&S 1997) | le (Le et al. 2015, adding)
    epoch_batches: int = 50  # fresh training minibatches per epoch (no fixed training set)
    eval_size: int = 1000  # sequences in each of val and test (drawn from seed + 1, seed + 2)
    eval_batch: int = 250  # sequences per evaluation chunk (each chunk shares one length)

    def __post_init__(self) -> None:
        check(self.problem in PROBLEMS, f"unknown problem '{self.problem}': choose one of "
              f"{', '.join(PROBLEMS)} (task.problem)")
        check(self.variant in VARIANTS, f"unknown variant '{self.variant}': choose one of "
              f"{', '.join(VARIANTS)} (task.variant)")
        check(self.variant != "le" or self.problem == "adding",
              f"variant 'le' defines the adding problem only, not '{self.problem}': use martens")
        check(not (self.variant == "hochreiter" and self.problem in ("xor", "permutation", *MEMORY_PROBLEMS)),
              f"Hochreiter & Schmidhuber 1997 do not define '{self.problem}': use variant martens")
        check(self.length >= 20, f"length must be >= 20 (markers need room), got {self.length} (task.length)")
        check(self.epoch_batches > 0, f"epoch_batches must be positive, got {self.epoch_batches}")
        check(self.eval_size > 0 and self.eval_batch > 0, "eval_size and eval_batch must be positive")


def _randint(lo: int, hi: int, n: int, g: torch.Generator) -> Tensor:
    """(n,) integers uniform in [lo, hi)."""
    return torch.randint(lo, hi, (n,), generator=g)


class PathologicalTask(Task):
    """Fresh minibatches of one pathological problem; see the module docstring."""

    headline = "wrong_fraction"

    name = "pathological"

    def __init__(self, config: PathologicalConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.config, self.seed = config, seed
        self.device, self.dtype = torch.device(device), dtype
        p = config.problem
        if p in REAL_PROBLEMS:
            self.spec = TaskSpec(input_size=2, output_size=1)
        elif p in ORDER_PROBLEMS:
            self.spec = TaskSpec(input_size=len(ORDER_SYMBOLS), output_size=4 if p == "order2" else 8)
        elif p == "permutation":
            self.spec = TaskSpec(input_size=PERMUTATION_SYMBOLS, output_size=PERMUTATION_SYMBOLS)
        else:
            n, K = MEMORY_PROBLEMS[p]
            self.spec = TaskSpec(input_size=K + 2, output_size=K, per_step=True)
        self.eval_sets = {split: self._eval_set(seed + k) for k, split in ((1, "val"), (2, "test"))}

    # -- generators --------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator) -> Tuple[Tensor, Tensor]:
        """(inputs, targets) of ``n`` fresh sequences sharing one length, in the task's
        device and dtype: inputs (n, L, F); targets (n, 1) float, (n,) or (n, L) class ids."""
        return self._to(*self._draw(n, generator))

    def _draw(self, n: int, generator: torch.Generator) -> Tuple[Tensor, Tensor]:
        p = self.config.problem
        if p in REAL_PROBLEMS:
            return self._marked(n, generator)
        if p in ORDER_PROBLEMS:
            return self._order(n, generator)
        if p == "permutation":
            return self._permutation(n, generator)
        return self._memorize(n, generator)

    def _length(self, g: torch.Generator) -> int:
        T, v = self.config.length, self.config.variant
        extra = 0 if v == "le" else T // 10  # H&S: T + T/10; M&S: up to 1.1 T
        return int(_randint(T, T + extra + 1, 1, g))

    def _marked(self, n: int, g: torch.Generator) -> Tuple[Tensor, Tensor]:
        c, p = self.config, self.config.problem
        L = self._length(g)
        T = c.length
        if c.variant == "hochreiter":
            lo = 0.0 if p == "multiplication" else -1.0
            values = lo + (1.0 - lo) * torch.rand(n, L, generator=g, dtype=torch.float64)
            first = _randint(0, 10, n, g)
            second = _randint(0, T // 2 - 2, n, g)  # T/2 - 1 candidates minus the first
            second = second + (second >= first).long()  # distinct from the first
        else:
            if p == "xor":
                values = torch.randint(0, 2, (n, L), generator=g).double()
            else:
                values = torch.rand(n, L, generator=g, dtype=torch.float64)
            if c.variant == "le":
                first, second = _randint(0, L // 2, n, g), _randint(L // 2, L, n, g)
            else:
                first, second = _randint(0, T // 10, n, g), _randint(T // 10, T // 2, n, g)
        rows = torch.arange(n)
        marker = torch.zeros(n, L, dtype=torch.float64)
        if c.variant == "hochreiter":
            marker[:, 0] = marker[:, -1] = -1.0
        marker[rows, first] = marker[rows, second] = 1.0
        x1, x2 = values[rows, first], values[rows, second]
        if p == "adding" and c.variant == "hochreiter":
            zero = torch.zeros_like(x1)  # H&S: a marked first element counts as 0
            x1, x2 = torch.where(first == 0, zero, x1), torch.where(second == 0, zero, x2)
            y = 0.5 + (x1 + x2) / 4.0
        elif p == "adding":
            y = x1 + x2
        elif p == "multiplication":
            y = x1 * x2
        else:
            y = (x1 != x2).double()
        return torch.stack([values, marker], -1), y[:, None]  # (n, L, 2), (n, 1)

    def _order(self, n: int, g: torch.Generator) -> Tuple[Tensor, Tensor]:
        c, k = self.config, 2 if self.config.problem == "order2" else 3
        if c.variant == "hochreiter":
            L = int(_randint(100, 111, 1, g))
            windows = [(10, 21), (50, 61)] if k == 2 else [(10, 21), (33, 44), (66, 77)]
        else:
            L = T = c.length
            tenths = [(1, 2), (5, 6)] if k == 2 else [(1, 2), (3, 4), (6, 7)]
            windows = [(a * T // 10, b * T // 10) for a, b in tenths]
        sym = torch.randint(0, 4, (n, L), generator=g)  # distractors a b c d
        bits = torch.randint(0, 2, (n, k), generator=g)  # 0 = X, 1 = Y
        rows = torch.arange(n)
        for j, (lo, hi) in enumerate(windows):
            sym[rows, _randint(lo, hi, n, g)] = 4 + bits[:, j]
        if c.variant == "hochreiter":
            sym[:, 0], sym[:, -1] = ORDER_SYMBOLS.index("B"), ORDER_SYMBOLS.index("E")
        label = (bits * (2 ** torch.arange(k - 1, -1, -1))).sum(1)  # XX=0, XY=1, YX=2, YY=3
        return F.one_hot(sym, len(ORDER_SYMBOLS)).double(), label

    def _permutation(self, n: int, g: torch.Generator) -> Tuple[Tensor, Tensor]:
        T = self.config.length
        sym = torch.randint(2, PERMUTATION_SYMBOLS, (n, T), generator=g)
        sym[:, 0] = torch.randint(0, 2, (n,), generator=g)
        return F.one_hot(sym, PERMUTATION_SYMBOLS).double(), sym[:, 0].clone()

    def _memorize(self, n_seq: int, g: torch.Generator) -> Tuple[Tensor, Tensor]:
        n, K = MEMORY_PROBLEMS[self.config.problem]
        T = self.config.length
        L = n + T + n
        blank, trigger = K, K + 1
        data = torch.randint(0, K, (n_seq, n), generator=g)
        sym = torch.full((n_seq, L), blank, dtype=torch.long)
        sym[:, :n] = data
        sym[:, n + T - 1] = trigger
        y = torch.full((n_seq, L), IGNORE, dtype=torch.long)
        y[:, L - n:] = data
        return F.one_hot(sym, K + 2).double(), y

    # -- the Task protocol -------------------------------------------------------------------
    def _to(self, x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
        y = y.to(self.device, self.dtype) if y.is_floating_point() else y.to(self.device)
        return x.to(self.device, self.dtype), y

    def _eval_set(self, seed: int) -> List[Tuple[Tensor, Tensor]]:
        g = torch.Generator().manual_seed(seed)
        c, out, left = self.config, [], self.config.eval_size
        while left > 0:
            out.append(self.sample(min(c.eval_batch, left), g))
            left -= c.eval_batch
        return out

    def split_size(self, split: str) -> int:
        if split == "train":
            return 0  # an endless stream of fresh sequences
        return sum(len(x) for x, _ in self.eval_sets[split])

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        if split != "train":
            for x, y in self.eval_sets[split]:
                yield Batch(x, y)
            return
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        for _ in range(self.config.epoch_batches):
            yield Batch(*self.sample(batch_size, g))

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """MSE for real answers; cross-entropy (over the steps with a target) for classes."""
        targets = batch.targets
        if targets.is_floating_point():
            return ((outputs - targets) ** 2).mean()
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE)

    def wrong(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Bool: which answers are wrong, (N,) per sequence or (steps,) per recall step."""
        if targets.is_floating_point():
            return (outputs - targets).abs().amax(-1) > TOLERANCE
        keep = targets != IGNORE
        return outputs.argmax(-1)[keep] != targets[keep]

    def within_tolerance(self, outputs: Tensor, batch: Batch, tolerance: float) -> Tensor:
        targets = batch.targets
        if targets.is_floating_point() or targets.dim() == 1:
            return super().within_tolerance(outputs, batch, tolerance)
        right = (outputs.argmax(-1) == targets) | (targets == IGNORE)
        return right.all(1)

    def evaluate(self, model, split: str) -> Dict[str, float]:
        """loss and wrong_fraction (the papers' criterion) on the val or test set."""
        if split == "train":
            return {}
        total, wrong, count, seqs = 0.0, 0, 0, 0
        with evaluating(model):
            for x, y in self.eval_sets[split]:
                out = model(x)[0]
                total += float(self.loss(out, Batch(x, y))) * len(x)
                w = self.wrong(out, y)
                wrong, count, seqs = wrong + int(w.sum()), count + w.numel(), seqs + len(x)
        return {"loss": total / seqs, "wrong_fraction": wrong / max(count, 1)}

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        return {"test_wrong_fraction": self.evaluate(model, "test")["wrong_fraction"]}

    @classmethod
    def for_inference(cls, config: PathologicalConfig, state: Dict[str, Any], *, device="cpu",
                      dtype: torch.dtype = torch.float32) -> "PathologicalTask":
        return cls(config, device=device, dtype=dtype)
