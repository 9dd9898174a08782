"""The user's own labelled files: every format reads, and everything wrong with one is a
single line naming the problem, exit 2, with nothing written."""
from __future__ import annotations

import numpy as np
import pytest

import rnntrain
from rnntrain.cli.main import main
from rnntrain.errors import UserError
from rnntrain.tasks.labelled.sequences import aeon_dataset_dir, read_sequences


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


TS = """# a comment
@problemName tiny
@timeStamps false
@univariate false
@classLabel true up down
@data
1,2,3:4,5,6:up
2,1:3,3:down
1,2,3,4:0,0,0,0:up
"""


def test_ts_reads_multivariate_unequal_length_cases(tmp_path):
    data = read_sequences(write(tmp_path / "a.ts", TS))
    assert [x.shape for x in data.xs] == [(3, 2), (2, 2), (4, 2)]
    assert data.labels == ["up", "down", "up"]
    assert np.array_equal(data.xs[1], [[2, 3], [1, 3]])


@pytest.mark.skipif(aeon_dataset_dir() is None, reason="aeon not installed")
def test_ts_reader_equals_aeons_loader_on_japanese_vowels():
    from aeon.datasets import load_from_ts_file
    path = aeon_dataset_dir() / "JapaneseVowels" / "JapaneseVowels_TRAIN.ts"
    ours = read_sequences(path)
    X, y = load_from_ts_file(str(path))  # a list of (channels, length) arrays for unequal lengths
    assert len(ours) == len(X) == 270 and list(ours.labels) == list(y)
    assert all(np.array_equal(a, np.asarray(b).T) for a, b in zip(ours.xs, X))
    assert {len(x) for x in ours.xs} <= set(range(7, 30)) and ours.xs[0].shape[1] == 12


def test_long_csv_sequence_labels_and_per_step_labels(tmp_path):
    path = write(tmp_path / "a.csv", "id,t,x,label\ns1,1,0.5,a\ns1,0,0.1,a\ns2,0,1.0,b\ns2,1,2.0,c\n")
    data = read_sequences(path, time_column="t")
    assert np.array_equal(data.xs[0][:, 0], [0.1, 0.5])  # sorted by time within the sequence
    assert data.labels[0] == "a" and list(data.labels[1]) == ["b", "c"]


def test_npz_with_lengths_and_text_lines(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.arange(12.0).reshape(2, 3, 2), lengths=np.array([3, 1]), y=np.array([0, 1]))
    data = read_sequences(tmp_path / "a.npz")
    assert [len(x) for x in data.xs] == [3, 1] and data.labels == ["0", "1"]
    text = read_sequences(write(tmp_path / "a.txt", "pos\tgood film\nneg\tbad\n"), tokens="word")
    assert text.xs == [["good", "film"], ["bad"]] and text.labels == ["pos", "neg"]


def test_a_text_classifier_trains_on_words(tmp_path):
    lines = [f"{'pos' if i % 2 else 'neg'}\t{'great fine good' if i % 2 else 'awful bad poor'} film {i % 7}"
             for i in range(80)]
    path = write(tmp_path / "reviews.tsv", "\n".join(lines) + "\n")
    config = rnntrain.load_config(base={"task.kind": "classify", "task.data": str(path), "task.tokens": "word",
                                        "model.hidden": 8, "model.embedding": 8, "train.epochs": 15})
    run = rnntrain.train(config)
    assert run.summary["metrics"]["val"]["accuracy"] == 1.0


BAD = {
    "ragged npz": ("a.npz", None, "ragged"),
    "interleaved ids": ("a.csv", "id,x,label\ns1,1,a\ns2,2,b\ns1,3,a\n", "not contiguous"),
    "missing label": ("a.csv", "id,x,label\ns1,1,a\ns2,2,\n", "missing label"),
    "nan value": ("a.csv", "id,x,label\ns1,nan,a\ns2,2,b\n", "non-finite"),
    "not a number": ("a.csv", "id,x,label\ns1,abc,a\ns2,2,b\n", "not a number"),
    "no tab": ("a.txt", "pos good\n", "no TAB"),
    "empty ts case": ("a.ts", "@classLabel true a b\n@data\n:a\n", "is empty"),
    "per-step labels to classify": ("a.csv", "id,x,label\ns1,1,a\ns1,2,b\ns2,1,a\n", "use --task tag"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_one_line_exit_2_nothing_written(tmp_path, capsys, case):
    name, text, message = BAD[case]
    path = tmp_path / name
    if text is None:
        np.savez(path, X=np.array([np.zeros(3), np.zeros(2)], dtype=object), y=np.array([0, 1]))
    else:
        write(path, text)
    out = tmp_path / "run"
    assert main(["train", "--task", "classify", "--data", str(path), "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_a_test_label_training_never_saw_is_named(tmp_path):
    train = write(tmp_path / "train.csv", "id,x,label\n" + "".join(f"s{i},{i},{'ab'[i % 2]}\n" for i in range(10)))
    test = write(tmp_path / "test.csv", "id,x,label\nt1,1,a\nt2,2,zebra\n")
    with pytest.raises(UserError, match=r"\['zebra'\] never occur in the training data"):
        rnntrain.train(rnntrain.load_config(base={"task.kind": "classify", "task.data": str(train),
                                                  "task.test_data": str(test)}))


def test_scaling_is_fitted_on_the_training_split_only(tmp_path):
    rows = "".join(f"s{i},{v},{'ab'[i % 2]}\n" for i in range(40) for v in (i, i + 1))
    config = rnntrain.load_config(base={"task.kind": "classify", "task.data": str(write(tmp_path / "a.csv", "id,x,label\n" + rows)),
                                        "train.epochs": 1})
    task = rnntrain.Trainer(config).task
    train_values = np.concatenate(task.sets["train"].xs)
    assert task.scaler.state_dict()["offset"][0] == pytest.approx(train_values.mean())
    # stratified: both classes in the same proportion in every split
    for split in ("train", "val", "test"):
        labels = task.sets[split].labels
        assert abs(labels.count("a") - labels.count("b")) <= 1


def test_a_tagged_sequence_whose_rows_share_one_label_is_that_label_at_every_step(tmp_path):
    rows = ["id,t,x,label"] + [f"a,{t},{t % 3 - 1},{'up' if t % 2 else 'down'}" for t in range(6)] \
        + [f"b,{t},0.5,up" for t in range(4)] + [f"c,{t},{-t},down" for t in range(5)]
    (tmp_path / "steps.csv").write_text("\n".join(rows) + "\n")
    config = rnntrain.load_config(base={"task.kind": "tag", "task.data": str(tmp_path / "steps.csv"),
                                        "task.time_column": "t", "train.epochs": 1, "model.hidden": 4})
    task = rnntrain.Trainer(config).task
    assert task.classes == ["down", "up"]
    run = rnntrain.train(config)
    assert run.history[-1]["round"] == 1
