r"""Character-level language modelling with stateful truncated BPTT.

The text is a stream of character ids c_0 .. c_{n-1} (vocabulary: the sorted distinct
characters of the whole text). Each split (a contiguous stretch, in order) is cut into
S parallel streams; batch k holds the k-th chunk of every stream::

    inputs   (S, L) long   c[s*m + kL : s*m + kL + L]
    targets  (S, L) long   c[s*m + kL + 1 : s*m + kL + L + 1]      (inputs shifted by one)

so the final state of batch k is the right initial state of batch k+1 (``continues``).
The loss is the cross-entropy of (S, L, V) logits at every step, in nats per character;
bits per character = loss / ln 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config.schema import absolute_paths, check
from ..core import detach_state
from ..errors import UserError
from .base import evaluating, SPLITS, Batch, Task, TaskSpec
from .series import check_split, split_bounds

EVAL_STREAMS = 32  # parallel streams in evaluation: each starts from a zero state, so few


@dataclass(frozen=True)
class TextConfig:
    """Character-level language model task."""

    text: str = ""  # UTF-8 text file; empty: a corpus shipped with Python itself (no download)
    seq_len: int = 100  # characters per chunk of stateful truncated BPTT
    split: tuple[float, ...] = (0.9, 0.05, 0.05)  # train/val/test fractions, by position
    sample_length: int = 300  # characters sampled into the run summary
    temperature: float = 0.8  # sampling temperature (< 1: more conservative than the model)
    prime: str = ""  # text the sample starts from (empty: a newline, or the first char)

    def __post_init__(self):
        absolute_paths(self, "text")
        check(self.seq_len >= 1, f"seq_len must be >= 1, got {self.seq_len}")
        check_split(self.split, "text split")
        check(self.sample_length >= 0, f"sample_length must be >= 0, got {self.sample_length}")
        check(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")


def default_corpus() -> str:
    """English text shipped with CPython: the ``pydoc_data.topics`` help texts joined in
    sorted key order (~460k characters). Where that module is missing (some distro
    builds strip it) the source code of the stdlib ``argparse`` module is used instead."""
    try:
        from pydoc_data.topics import topics
        return "\n".join(topics[k] for k in sorted(topics))
    except ImportError:
        import argparse
        import inspect
        return inspect.getsource(argparse)


def read_text(path) -> str:
    """A UTF-8 text file's contents; missing, empty or non-UTF-8 files raise UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"text file not found: {path}; check the path given to --text")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                        f"{e.start}); convert it, e.g. iconv -f latin1 -t utf-8 in.txt > out.txt")
    check(bool(text), f"{path} is empty; give a text file with some characters in it")
    return text


class CharTask(Task):
    """Next-character prediction at every step.

    spec: input_size = output_size = V (vocabulary size), tokens=True, per_step=True.
    """

    headline = "bpc"

    name = "text"

    def __init__(self, config: TextConfig, *, seed: int = 0, device="cpu",
                 dtype: torch.dtype = torch.float32):
        self.config, self.seed = config, seed
        self.device, self.dtype = torch.device(device), dtype  # dtype unused: ids are long
        text = read_text(config.text) if config.text else default_corpus()
        self._set_vocab(sorted(set(text)))
        # code points -> ids by binary search in the sorted vocabulary: no Python loop
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(np.array([ord(c) for c in self.vocab], dtype=np.uint32), points)
        self.ids = torch.as_tensor(ids, dtype=torch.long)  # (n,) on CPU; chunks move to device
        self.bounds = split_bounds(len(text), config.split)
        a, b = self.bounds["train"]
        check(b - a >= config.seq_len + 1,
              f"the train split has {b - a} characters but one chunk needs seq_len + 1 = "
              f"{config.seq_len + 1}; use a longer text or a smaller --seq-len")

    def _set_vocab(self, vocab: List[str]) -> None:
        self.vocab = list(vocab)
        self.stoi = {c: i for i, c in enumerate(self.vocab)}
        V = len(self.vocab)
        self.spec = TaskSpec(input_size=V, output_size=V, tokens=True, per_step=True)

    # ------------------------------------------------------------ Task protocol

    def split_size(self, split: str) -> int:
        if self.ids is None:
            return 0
        a, b = self.bounds[split]
        return b - a

    def batches(self, split: str, batch_size: int, *,
                generator: Optional[torch.Generator] = None) -> Iterator[Batch]:
        """Consecutive (S, L) chunks of S = min(batch_size, fitting) streams; the last chunk
        may be shorter than seq_len. Not shuffled: a stream is a stream (``generator`` unused)."""
        a, b = self.bounds[split]
        n, L = b - a, self.config.seq_len
        if n < 2:
            return
        streams = max(1, min(batch_size, (n - 1) // L))  # each stream gets >= one full chunk
        m = (n - 1) // streams  # input characters per stream
        starts = a + np.arange(streams)[:, None] * m
        x = self.ids[torch.as_tensor(starts + np.arange(m))]  # (S, m)
        y = self.ids[torch.as_tensor(starts + np.arange(m) + 1)]  # (S, m) shifted by one
        for k in range(0, m, L):
            yield Batch(x[:, k:k + L].to(self.device), y[:, k:k + L].to(self.device),
                        continues=k > 0)

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy (nats/char); outputs (N, L, V) logits, targets (N, L) ids."""
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), batch.targets.reshape(-1))

    def evaluate(self, model, split: str) -> Dict[str, float]:
        """Stateful pass over the split: loss (nats/char), bpc and perplexity."""
        total, count, state = 0.0, 0, None
        with evaluating(model):
            for batch in self.batches(split, EVAL_STREAMS):
                outputs, state = model(batch.inputs, state if batch.continues else None)
                state = detach_state(state)
                total += float(self.loss(outputs, batch)) * batch.targets.numel()
                count += batch.targets.numel()
        if count == 0:
            return {}
        loss = total / count
        return {"loss": loss, "bpc": loss / math.log(2),
                "perplexity": math.exp(loss) if loss < 700 else math.inf}  # exp overflows past 709

    # ------------------------------------------------------------ sampling

    def sample(self, model, length: int, temperature: float = 1.0, prime: str = "",
               generator: Optional[torch.Generator] = None) -> str:
        """``length`` characters after ``prime``, drawn from softmax(logits / temperature)
        one at a time (temperature below 1e-6: argmax). The prime is not included."""
        if not prime:
            prime = "\n" if "\n" in self.stoi else self.vocab[0]
        unknown = sorted(set(c for c in prime if c not in self.stoi))
        check(not unknown, f"prime has characters {unknown} that are not in the training "
                           f"text's vocabulary; remove them from --prime")
        ids = torch.tensor([[self.stoi[c] for c in prime]], device=self.device)  # (1, P)
        out: List[str] = []
        with evaluating(model):
            logits, state = model(ids, None)  # (1, P, V)
            for _ in range(length):
                last = logits[0, -1].double()  # (V,)
                if temperature < 1e-6:
                    nxt = int(last.argmax())
                else:
                    probs = torch.softmax(last / temperature, dim=-1).cpu()
                    nxt = int(torch.multinomial(probs, 1, generator=generator))
                out.append(self.vocab[nxt])
                logits, state = model(torch.tensor([[nxt]], device=self.device), state)
        return "".join(out)

    FILES = ("sample.txt",)

    def report(self, model, out_dir: Path) -> Dict[str, Any]:
        """A seeded sample of ``sample_length`` characters, also written to sample.txt."""
        c = self.config
        prime = c.prime or ("\n" if "\n" in self.stoi else self.vocab[0])
        generator = torch.Generator().manual_seed(self.seed)
        text = self.sample(model, c.sample_length, c.temperature, prime, generator)
        (Path(out_dir) / "sample.txt").write_text(prime + text, encoding="utf-8")
        return {"sample": text, "sample_prime": prime}

    # ------------------------------------------------------------ state

    def state_dict(self) -> Dict[str, Any]:
        return {"vocab": list(self.vocab)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        vocab = list(state["vocab"])
        check(self.ids is None or vocab == self.vocab,
              "the saved vocabulary differs from this text's; use the text the model was "
              "trained on")
        self._set_vocab(vocab)

    @classmethod
    def for_inference(cls, config: TextConfig, state: Dict[str, Any], *, device="cpu",
                      dtype: torch.dtype = torch.float32) -> "CharTask":
        """A task that can ``sample`` from a saved vocabulary, without the corpus."""
        task = cls.__new__(cls)
        task.config, task.seed, task.device, task.dtype = config, 0, torch.device(device), dtype
        task.ids, task.bounds = None, {s: (0, 0) for s in SPLITS}
        task.load_state_dict(state)
        return task
