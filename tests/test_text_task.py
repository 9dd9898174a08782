"""The character-level task: contiguous streams for stateful TBPTT, bits per character,
sampling, and the errors a user can hit with a text file."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from rnntrain.errors import UserError
from rnntrain.tasks.text import CharTask, TextConfig


class Fixed(nn.Module):
    """Logits (N, L, V) that are zero except ``bias`` at class ``favourite``; the state
    counts chunks seen, as an LSTM-style (h, c) tuple that requires grad."""

    def __init__(self, vocab_size, favourite=0, bias=0.0):
        super().__init__()
        self.V, self.favourite, self.bias = vocab_size, favourite, bias
        self.received = []

    def forward(self, x, state=None):
        self.received.append(state)
        logits = torch.zeros(*x.shape, self.V)
        logits[..., self.favourite] = self.bias
        count = torch.zeros(x.shape[0], requires_grad=True) if state is None else state[0]
        return logits, (count + 1, count * 0)


def text_task(tmp_path, text, **kw):
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return CharTask(TextConfig(text=str(path), **kw))


def random_text(n, seed=0):
    return "".join(np.random.default_rng(seed).choice(list("abcdefgh \n"), n))


def test_default_corpus_ships_with_python():
    task = CharTask(TextConfig())
    assert task.split_size("train") > 100_000  # pydoc_data.topics: ~460k characters
    assert "\n" in task.vocab and "e" in task.vocab and task.vocab == sorted(task.vocab)
    assert task.spec.tokens and task.spec.per_step
    assert task.spec.input_size == task.spec.output_size == len(task.vocab)


@pytest.mark.parametrize("kw, words", [(dict(seq_len=0), "seq_len"),
                                       (dict(split=(0.9, 0.2)), "sum to 1"),
                                       (dict(temperature=-1.0), "temperature")])
def test_config_rejects_bad_values(kw, words):
    with pytest.raises(UserError, match=words):
        TextConfig(**kw)


def test_chunks_continue_each_stream_and_targets_are_inputs_shifted(tmp_path):
    text = random_text(2000)
    task = text_task(tmp_path, text, seq_len=7, split=(1.0,))
    batches = list(task.batches("train", 4))
    assert [b.continues for b in batches] == [False] + [True] * (len(batches) - 1)
    for b in batches:
        assert b.inputs.shape == b.targets.shape and b.inputs.dtype == torch.long
        assert torch.equal(b.inputs[:, 1:], b.targets[:, :-1])  # shifted by one character
    for prev, nxt in zip(batches, batches[1:]):
        assert torch.equal(prev.targets[:, -1], nxt.inputs[:, 0])  # the stream goes on
    assert batches[0].inputs.shape == (4, 7)
    stream0 = "".join(task.vocab[i] for b in batches for i in b.inputs[0].tolist())
    m = (2000 - 1) // 4
    assert stream0 == text[:m]  # each stream is one contiguous stretch of the text
    stream3 = "".join(task.vocab[i] for b in batches for i in b.targets[3].tolist())
    assert stream3 == text[3 * m + 1:4 * m + 1]


def test_small_splits_use_fewer_streams(tmp_path):
    task = text_task(tmp_path, random_text(1000), seq_len=10, split=(0.95, 0.05))
    val = list(task.batches("val", 32))  # 50 characters: 4 streams of >= one chunk
    assert val[0].inputs.shape == (4, 10)
    assert sum(b.targets.numel() for b in val) == 4 * (49 // 4)


def test_uniform_model_scores_log2_vocab_bits_per_char(tmp_path):
    task = text_task(tmp_path, random_text(3000), seq_len=16, split=(0.8, 0.2))
    V = len(task.vocab)
    m = task.evaluate(Fixed(V), "val")
    assert m["bpc"] == pytest.approx(math.log2(V))
    assert m["loss"] == pytest.approx(math.log(V)) and m["perplexity"] == pytest.approx(V)


def test_evaluation_carries_detached_state_across_chunks(tmp_path):
    task = text_task(tmp_path, random_text(3000), seq_len=16, split=(0.5, 0.5))
    model = Fixed(len(task.vocab))
    model.train()
    task.evaluate(model, "val")
    assert model.training  # restored after evaluation
    assert model.received[0] is None
    chunks = [int(s[0][0]) for s in model.received[1:]]
    assert chunks == list(range(1, len(model.received)))  # state = chunks seen so far
    assert not any(s[0].requires_grad for s in model.received[1:])


def test_greedy_sampling_repeats_the_only_predicted_character(tmp_path):
    task = text_task(tmp_path, "abcabcabc" * 30, seq_len=5)
    model = Fixed(len(task.vocab), favourite=task.stoi["b"], bias=3.0)
    assert task.sample(model, 12, temperature=0.0, prime="ca") == "b" * 12
    g = lambda: torch.Generator().manual_seed(0)
    assert task.sample(model, 50, 1.0, "a", g()) == task.sample(model, 50, 1.0, "a", g())
    assert set(task.sample(model, 200, 1.0, "a", g())) == {"a", "b", "c"}  # p(b) = 0.91


def test_sampling_rejects_unknown_prime_characters(tmp_path):
    task = text_task(tmp_path, "abcabcabc" * 30, seq_len=5)
    with pytest.raises(UserError, match=r"\['x', 'z'\].*--prime"):
        task.sample(Fixed(3), 5, prime="azx")


def test_report_writes_a_seeded_sample(tmp_path):
    task = text_task(tmp_path, "ab\nab\n" * 50, seq_len=5, sample_length=20, temperature=0.0)
    model = Fixed(len(task.vocab), favourite=task.stoi["a"], bias=1.0)
    out = task.report(model, tmp_path)
    assert out == {"sample": "a" * 20, "sample_prime": "\n"}
    assert (tmp_path / "sample.txt").read_text(encoding="utf-8") == "\n" + "a" * 20


def test_sampling_from_saved_vocabulary_needs_no_corpus(tmp_path):
    task = text_task(tmp_path, "hello world\n" * 20, seq_len=5)
    state = json.loads(json.dumps(task.state_dict()))
    (tmp_path / "corpus.txt").unlink()
    fresh = CharTask.for_inference(task.config, state, device="cpu", dtype=torch.float32)
    model = Fixed(len(task.vocab), favourite=task.stoi["o"], bias=1.0)
    assert fresh.sample(model, 4, temperature=0.0, prime="hell") == "oooo"
    assert fresh.spec == task.spec and fresh.evaluate(model, "val") == {}


@pytest.mark.parametrize("content, words", [
    (b"", "empty"), ("caf\u00e9 ol\u00e9\n".encode("latin-1") * 50, "not UTF-8.*iconv"),
    (b"short", "train split has 4 characters.*seq_len \\+ 1 = 101")])
def test_bad_text_files_raise_user_errors(tmp_path, content, words):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=words):
        CharTask(TextConfig(text=str(path)))


def test_missing_text_file(tmp_path):
    with pytest.raises(UserError, match="not found.*--text"):
        CharTask(TextConfig(text=str(tmp_path / "nope.txt")))
