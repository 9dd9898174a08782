"""The formal-language task: aⁿbⁿ next-symbol prediction (Weiss, Goldberg & Yahav 2018)."""
from __future__ import annotations

import pytest
import torch

from rnntrain.tasks import LANGUAGES, LanguageConfig, LanguageTask
from rnntrain.tasks.languages import IGNORE


def test_anbn_strings_targets_and_legal_continuations():
    task = LanguageTask(LanguageConfig(max_n=3, test_max_n=5, train_size=20, eval_size=10))
    x, y = task.encode(["ab", "aabb"])
    ids = task.stoi
    assert x[0].tolist() == [ids["^"], ids["a"], ids["b"], ids["$"], ids["$"]]  # padded with $
    assert y[0].tolist() == [ids["a"], ids["b"], ids["$"], IGNORE, IGNORE]
    allowed = LANGUAGES["anbn"].allowed
    assert [allowed(p) for p in ("", "a", "aa", "aab", "aabb")] == [{"a"}, {"a", "b"}, {"a", "b"}, {"b"}, {"$"}]
    assert all(3 < len(s) // 2 <= 5 for s in task.strings["test"])  # longer than training
    assert all(1 <= len(s) // 2 <= 3 for s in task.strings["train"])


def test_a_model_that_predicts_every_legal_symbol_is_accepted():
    task = LanguageTask(LanguageConfig(max_n=3, test_max_n=5, train_size=8, eval_size=8))

    class Oracle(torch.nn.Module):  # logits from the language's own rule: a, then b, then $
        def forward(self, x, state=None, *, lengths=None, final_state=True):
            out = torch.zeros(*x.shape, len(task.vocab))
            for i, row in enumerate(x.tolist()):
                s = "".join(task.vocab[t] for t in row[1:])
                for t in range(x.shape[1]):
                    legal = LANGUAGES["anbn"].allowed(s[:t].rstrip("$"))
                    out[i, t, task.stoi["b" if "b" in legal and "a" not in legal else sorted(legal)[0]]] = 1
            return out, None

    assert task.evaluate(Oracle(), "test")["accuracy"] == 1.0


def test_language_config_names_the_fix():
    with pytest.raises(Exception, match="test_max_n must exceed max_n"):
        LanguageConfig(max_n=5, test_max_n=5)
    with pytest.raises(Exception, match="unknown language 'dyck'"):
        LanguageConfig(language="dyck")
