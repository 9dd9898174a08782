r"""Formal languages as next-symbol prediction (Weiss, Goldberg & Yahav 2018).

A language is a family of strings, here indexed by n (aⁿbⁿ: ``aaabbb`` for n = 3). The
network reads ``^ s_1 .. s_m`` and is trained, from positive examples only, to predict
the next symbol at every step (the last target is the end mark ``$``)::

    inputs   ^ a a a b b b            (N, L) long, padded with $ after the end
    targets  a a a b b b $            (N, L) long, -100 (ignored) after the end

A string is *accepted* when the network's most likely next symbol is a legal
continuation at every step (``Language.allowed``: after ``^aa`` both a and b are legal,
after ``^aab`` only b). The test split holds longer strings than training
(n in (max_n, test_max_n]), which shows whether the network counts or memorised lengths.

Languages: aⁿbⁿ, aⁿbⁿcⁿ (Weiss, Goldberg & Yahav 2018, sec. 5), Dyck-1 and Dyck-2
(balanced brackets of one or two kinds, n = number of pairs; the n-th string is a
pseudo-random Dyck word fixed by n). Adding a language is adding a :class:`Language`.

``report`` writes the per-n acceptance table (``accepted_by_n.csv``) and its plot
(``accepted_by_n.png``) for every n from ``min_n`` to ``test_max_n``: train on n <= 100,
test every n up to 1000 to see whether the network counts or memorised lengths.
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

import torch
import torch.nn.functional as F

from ..config.schema import check
from .base import Batch, Task, TaskSpec, evaluating

START, END, IGNORE = "^", "$", -100


@dataclass(frozen=True)
class Language:
    """A language as a generator of its n-th string and its legal next symbols."""

    name: str
    alphabet: str  # symbols of the strings (without ^ and $)
    string: Callable[[int], str]  # n -> the string of index n
    allowed: Callable[[str], Set[str]]  # prefix (without ^) -> legal next symbols, $ = end


def _anbn_allowed(prefix: str) -> Set[str]:
    a, b = prefix.count("a"), prefix.count("b")
    if b == 0:
        return {"a"} if a == 0 else {"a", "b"}
    return {"b"} if b < a else {END}


def _anbncn_allowed(prefix: str) -> Set[str]:
    a, b, c = prefix.count("a"), prefix.count("b"), prefix.count("c")
    if b == 0:
        return {"a"} if a == 0 else {"a", "b"}
    if c == 0 and b < a:
        return {"b"}
    return {"c"} if c < a else {END}


CLOSE = {"(": ")", "[": "]"}


def _dyck(pairs: str) -> Callable[[int], str]:
    """n -> a Dyck word of n bracket pairs, pseudo-random but fixed by n (seeded by n):
    open while the depth is 0 or with probability 1/2, until n pairs are open."""
    def string(n: int) -> str:
        rng, stack, out, opened = random.Random(n), [], [], 0
        while opened < n or stack:
            if opened < n and (not stack or rng.random() < 0.5):
                stack.append(rng.choice(pairs))
                out.append(stack[-1])
                opened += 1
            else:
                out.append(CLOSE[stack.pop()])
        return "".join(out)
    return string


def _dyck_allowed(pairs: str) -> Callable[[str], Set[str]]:
    """Legal next symbols of a Dyck prefix: any opener, the closer of the innermost open
    bracket, and the end only at depth 0."""
    def allowed(prefix: str) -> Set[str]:
        stack: List[str] = []
        for ch in prefix:
            if ch in CLOSE:
                stack.append(ch)
            else:
                stack.pop()
        return set(pairs) | ({CLOSE[stack[-1]]} if stack else {END})
    return allowed


LANGUAGES: Dict[str, Language] = {
    "anbn": Language("anbn", "ab", lambda n: "a" * n + "b" * n, _anbn_allowed),
    "anbncn": Language("anbncn", "abc", lambda n: "a" * n + "b" * n + "c" * n, _anbncn_allowed),
    "dyck1": Language("dyck1", "()", _dyck("("), _dyck_allowed("(")),
    "dyck2": Language("dyck2", "()[]", _dyck("(["), _dyck_allowed("([")),
}


@dataclass(frozen=True)
class LanguageConfig:
    """Next-symbol prediction on a formal language."""

    language: str = "anbn"  # one of LANGUAGES: anbn | anbncn | dyck1 | dyck2 (n = pairs)
    min_n: int = 1  # shortest string index in every split
    max_n: int = 10  # longest string index in train and val
    test_max_n: int = 20  # test split: n in (max_n, test_max_n] (lengths never trained on)
    train_size: int = 500  # strings in the train split (n uniform in [min_n, max_n])
    eval_size: int = 100  # strings in val and in test

    def __post_init__(self):
        check(self.language in LANGUAGES, f"unknown language '{self.language}': choose one of "
              f"{', '.join(LANGUAGES)} (task.language)")
        check(1 <= self.min_n <= self.max_n, f"need 1 <= min_n <= max_n, got {self.min_n}, {self.max_n}")
        check(self.test_max_n > self.max_n, f"test_max_n must exceed max_n = {self.max_n} "
              f"(the test split holds longer strings), got {self.test_max_n}")
        check(self.train_size > 0 and self.eval_size > 0, "train_size and eval_size must be positive")


class LanguageTask(Task):
    """spec: input_size = output_size = |alphabet| + 2 (^ and $), tokens, per_step."""

    headline = "accuracy"

    name = "language"

    def __init__(self, config: LanguageConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32):
        self.config, self.seed = config, seed
        self.device, self.dtype = torch.device(device), dtype
        self.language = LANGUAGES[config.language]
        self.vocab = [START, END, *self.language.alphabet]
        self.stoi = {c: i for i, c in enumerate(self.vocab)}
        V = len(self.vocab)
        self.spec = TaskSpec(input_size=V, output_size=V, tokens=True, per_step=True)
        g = torch.Generator().manual_seed(seed)
        lo, hi = config.min_n, config.max_n

        def draw(count, a, b):
            return torch.randint(a, b + 1, (count,), generator=g).tolist()

        self.strings = {"train": [self.language.string(n) for n in draw(config.train_size, lo, hi)],
                        "val": [self.language.string(n) for n in draw(config.eval_size, lo, hi)],
                        "test": [self.language.string(n) for n in
                                 draw(config.eval_size, hi + 1, config.test_max_n)]}

    def encode(self, strings: List[str]):
        """(inputs (N, L), targets (N, L)) for strings, padded to the longest."""
        L = 1 + max(len(s) for s in strings)
        x = torch.full((len(strings), L), self.stoi[END], dtype=torch.long)
        y = torch.full((len(strings), L), IGNORE, dtype=torch.long)
        for i, s in enumerate(strings):
            ids = [self.stoi[c] for c in START + s + END]
            x[i, :len(ids) - 1] = torch.tensor(ids[:-1])
            y[i, :len(ids) - 1] = torch.tensor(ids[1:])
        return x.to(self.device), y.to(self.device)

    @staticmethod
    def lengths_of(strings: List[str]) -> torch.Tensor:
        """(N,) steps read per string: ^ and its symbols (the padding after them is never read)."""
        return torch.tensor([len(s) + 1 for s in strings], dtype=torch.int64)

    def split_size(self, split: str) -> int:
        return len(self.strings[split])

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        strings = self.strings[split]
        order = (torch.randperm(len(strings), generator=generator) if split == "train"
                 else torch.arange(len(strings))).tolist()
        for i in range(0, len(order), batch_size):
            chosen = [strings[j] for j in order[i:i + batch_size]]
            x, y = self.encode(chosen)
            yield Batch(x, y, lengths=self.lengths_of(chosen))

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy over the real (not padded) steps; outputs (N, L, V)."""
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), batch.targets.reshape(-1),
                               ignore_index=IGNORE)

    def accepts(self, model, strings: List[str]) -> torch.Tensor:
        """(N,) bool: the most likely next symbol is legal at every step of each string."""
        x, _ = self.encode(strings)
        with evaluating(model):
            pred = model(x, lengths=self.lengths_of(strings), final_state=False)[0].argmax(-1).tolist()  # (N, L)
        ok = []
        for s, p in zip(strings, pred):
            ok.append(all(self.vocab[p[t]] in self.language.allowed(s[:t]) for t in range(len(s) + 1)))
        return torch.tensor(ok)

    def evaluate(self, model, split: str) -> Dict[str, float]:
        """loss (nats per symbol) and accuracy (fraction of strings accepted)."""
        strings = self.strings[split]
        if not strings:
            return {}
        x, y = self.encode(strings)
        batch = Batch(x, y, lengths=self.lengths_of(strings))
        with evaluating(model):
            loss = float(self.loss(model(x, lengths=batch.lengths, final_state=False)[0], batch))
        return {"loss": loss, "accuracy": float(self.accepts(model, strings).float().mean())}

    def accepted_by_n(self, model, ns: List[int], chunk: int = 50) -> List[bool]:
        """Whether the n-th string is accepted, for every n in ``ns`` (in chunks of strings)."""
        ok: List[bool] = []
        for i in range(0, len(ns), chunk):
            ok += self.accepts(model, [self.language.string(n) for n in ns[i:i + chunk]]).tolist()
        return ok

    FILES = ("accepted_by_n.csv", "accepted_by_n.png")

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        """Acceptance of every n from min_n to test_max_n: a CSV table, a plot, the summary."""
        c = self.config
        ns = list(range(c.min_n, c.test_max_n + 1))
        ok = self.accepted_by_n(model, ns)
        out_dir = Path(out_dir)
        with open(out_dir / "accepted_by_n.csv", "w", newline="") as f:
            csv.writer(f).writerows([("n", "accepted"), *zip(ns, [int(a) for a in ok])])
        from ..reporting.plots import plot_accepted_by_n  # drawn by the run's plot worker
        plot_accepted_by_n(ns, ok, c.max_n, out_dir / "accepted_by_n.png", self.language.name)
        first_wrong = next((n for n, a in zip(ns, ok) if not a), None)
        return {"accepted_n": [n for n, a in zip(ns, ok) if a], "first_rejected_n": first_wrong}

    @classmethod
    def for_inference(cls, config: LanguageConfig, state: Dict[str, Any], *, device="cpu",
                      dtype: torch.dtype = torch.float32) -> "LanguageTask":
        return cls(config, device=device, dtype=dtype)  # the strings are regenerated, cheaply
