r"""Labelled sequences as read from the user's files: a :class:`SequenceSet` and its readers.

A set is a list of sequences of any length, each with its label as the file gives it:

- ``xs[i]``: (L_i, F) float64 features, or a list of L_i string tokens (text);
- ``labels[i]``: one label per sequence (a string or a number), or one per step (an
  (L_i,) array), or a transcription (a string, split into symbols by the task).

Readers, chosen by extension (or ``format``):

========================  =====================================================================
``.ts``                    the UEA/UCR archives' format (univariate or multivariate, equal or
                           unequal length, class or regression target); read here, see :func:`read_ts`
``.csv``                   long format: a sequence-id column, an optional time column, feature
                           columns and a label column (constant within a sequence: a sequence
                           label; varying: a label per step)
``.npz``                   padded ``X`` (N, L, F) or (N, L), ``lengths`` (N,), ``y`` (N,) or (N, L)
``.txt``/``.tsv``          text classification: one example per line, ``label<TAB>text``
(format ``pairs``)         sequence pairs: one per line, ``source<TAB>target`` (the seq2seq
                           task's default for .txt/.tsv)
========================  =====================================================================

Everything wrong with a file is a :class:`UserError` naming the file, the place and the fix.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ...errors import UserError

FORMATS = ("auto", "ts", "csv", "npz", "text", "pairs")
_EXTENSIONS = {".ts": "ts", ".csv": "csv", ".npz": "npz", ".txt": "text", ".tsv": "text"}


@dataclass
class SequenceSet:
    """Sequences of any length and their labels (see the module docstring)."""

    xs: List[Any]
    labels: List[Any]
    features: List[str] = field(default_factory=list)  # feature names ([] for text)
    text: bool = False  # xs are token lists
    names: List[str] = field(default_factory=list)  # sequence ids, for messages and predictions
    source: str = ""
    # the file gives a label on every row (long CSV): a sequence whose rows share one label
    # is read as that label, and a tagging task reads it back as that label at every step
    row_labels: bool = False

    def __len__(self) -> int:
        return len(self.xs)

    def name(self, i: int) -> str:
        return self.names[i] if self.names else str(i)

    def subset(self, idx: Sequence[int]) -> "SequenceSet":
        pick = lambda v: [v[i] for i in idx]
        return SequenceSet(pick(self.xs), pick(self.labels), self.features, self.text,
                           pick(self.names) if self.names else [], self.source, self.row_labels)

    def check(self, *, labelled: bool = True) -> "SequenceSet":
        """UserError for an empty set, empty sequences, non-finite values, missing labels."""
        if not self.xs:
            raise UserError(f"{self.source}: no sequences found; check the file's format")
        for i, x in enumerate(self.xs):
            if len(x) == 0:
                raise UserError(f"{self.source}: sequence {self.name(i)} is empty; remove it or give it at least one step")
            if not self.text and not np.isfinite(x).all():
                t, f = np.argwhere(~np.isfinite(x))[0]
                raise UserError(f"{self.source}: sequence {self.name(i)} has a missing or non-finite value "
                                f"at step {t}, feature {self.features[f] if self.features else f}; "
                                "fill or drop it before training")
            if labelled and _missing(self.labels[i]):
                raise UserError(f"{self.source}: sequence {self.name(i)} has no label; every training "
                                "sequence needs one")
        return self


def _missing(label: Any) -> bool:
    if label is None:
        return True
    if isinstance(label, str):
        return label.strip() == ""
    if isinstance(label, float):
        return math.isnan(label)
    return False


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    kind = _EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: cannot tell the format from the extension '{path.suffix}'; "
                        f"use .ts, .csv, .npz, .txt/.tsv or set task.format ({', '.join(FORMATS[1:])})")
    return kind


def read_sequences(path, *, fmt: str = "auto", id_column: str = "id", time_column: str = "",
                   label_column: str = "label", columns: Sequence[str] = (),
                   tokens: str = "char", labelled: bool = True) -> SequenceSet:
    """Read a file of labelled sequences (see the module docstring); ``labelled=False``
    for prediction inputs, where labels may be absent."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    kind = detect_format(path, fmt)
    if kind == "ts":
        data = read_ts(path)
    elif kind == "csv":
        data = read_long_csv(path, id_column, time_column, label_column, columns, labelled)
    elif kind == "npz":
        data = read_npz(path, labelled)
    elif kind == "pairs":
        data = read_text(path, tokens, labelled, pairs=True)
    else:
        data = read_text(path, tokens, labelled)
    return data.check(labelled=labelled)


# ------------------------------------------------------------------------------------ .ts

def read_ts(path: Path) -> SequenceSet:
    """The sktime/aeon ``.ts`` format (Bagnall et al., the UEA/UCR archives).

    Written here rather than through aeon's loader: the format is a header of ``@key value``
    lines and one case per line (dimensions separated by ``:``, values by ``,``, the label
    last), which takes fewer lines than the adapter to aeon's nested arrays would, needs no
    import of aeon (numba, scikit-learn: seconds at start-up) and works without it installed.
    tests/test_labelled_data.py checks it against aeon's own loader on the shipped archives.
    """
    header: Dict[str, str] = {}
    xs, labels = [], []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise UserError(f"{path}:{lineno}: expected a '@key value' header line or @data; "
                                    "is this a .ts file?")
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                    if header.get("timestamps", "false").lower() == "true":
                        raise UserError(f"{path}: time-stamped .ts files are not read; export the "
                                        "series as a long CSV with a time column instead")
                else:
                    header[key] = value.strip()
                continue
            has_label = header.get("classlabel", "false").lower().startswith("true") or \
                header.get("targetlabel", "false").lower().startswith("true")
            parts = line.split(":")
            dims = parts[:-1] if has_label else parts
            label = parts[-1].strip() if has_label else None
            try:
                series = [np.array([np.nan if v.strip() in ("?", "") else float(v) for v in d.split(",")])
                          for d in dims]
            except ValueError as e:
                raise UserError(f"{path}:{lineno}: a value is not a number ({e})") from None
            if len({len(s) for s in series}) > 1:
                raise UserError(f"{path}:{lineno}: the dimensions of this case have different lengths "
                                f"({', '.join(str(len(s)) for s in series)}); every dimension needs one value per step")
            x = np.stack(series, axis=1)  # (L, F)
            while len(x) and np.isnan(x[-1]).all():  # trailing padding of equal-length exports
                x = x[:-1]
            xs.append(x)
            labels.append(label if not header.get("targetlabel", "false").lower().startswith("true")
                          else float(label))
    if not in_data:
        raise UserError(f"{path}: no @data line; is this a .ts file?")
    F = xs[0].shape[1] if xs else 0
    for i, x in enumerate(xs):
        if x.shape[1] != F:
            raise UserError(f"{path}: case {i} has {x.shape[1]} dimensions, the first has {F}")
    return SequenceSet(xs, labels, [f"dim_{k}" for k in range(F)], source=str(path))


# ------------------------------------------------------------------------------ long CSV

def read_long_csv(path: Path, id_column: str, time_column: str, label_column: str,
                  columns: Sequence[str], labelled: bool) -> SequenceSet:
    """Long format: one row per step; rows of a sequence contiguous (sorted by time within
    it when a time column is named). The label column may be constant within a sequence
    (a sequence label) or vary (a label per step). Read with the csv module: labelled
    data sets are thousands of sequences, not millions of rows."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        sample = f.read(4096)
        f.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(f, dialect)
        header = next(reader, None)
        if not header:
            raise UserError(f"{path}: the file is empty")
        header = [h.strip() for h in header]
        col = {h: k for k, h in enumerate(header)}
        for what, name in (("sequence-id", id_column), ("label", label_column if labelled else None),
                           ("time", time_column or None)):
            if name and name not in col:
                raise UserError(f"{path}: no {what} column '{name}'; columns are {', '.join(header)} "
                                f"(set task.{'id' if what == 'sequence-id' else what}_column)")
        skip = {id_column, time_column, label_column}
        feats = list(columns) or [h for h in header if h not in skip]
        unknown = [c for c in feats if c not in col]
        if unknown:
            raise UserError(f"{path}: unknown feature column(s) {unknown}; columns are {', '.join(header)}")
        if not feats:
            raise UserError(f"{path}: no feature columns besides the id and label columns")
        fidx = [col[c] for c in feats]
        order: List[str] = []
        rows: Dict[str, List[List[str]]] = {}
        last = None
        for lineno, row in enumerate(reader, 2):
            if not row or all(not v.strip() for v in row):
                continue
            if len(row) != len(header):
                raise UserError(f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}")
            sid = row[col[id_column]].strip()
            if sid != last:
                if sid in rows:
                    raise UserError(f"{path}:{lineno}: rows of sequence '{sid}' are not contiguous (it "
                                    f"appeared before line {lineno}); sort the file by '{id_column}'"
                                    f"{' then ' + repr(time_column) if time_column else ''} first, e.g. "
                                    f"pandas df.sort_values(['{id_column}'{', ' + repr(time_column) if time_column else ''}], kind='stable')")
                rows[sid], last = [], sid
                order.append(sid)
            rows[sid].append(row + [str(lineno)])
    xs, labels = [], []
    for sid in order:
        rs = rows[sid]
        if time_column:
            try:
                rs.sort(key=lambda r: float(r[col[time_column]]))
            except ValueError:
                rs.sort(key=lambda r: r[col[time_column]])
        try:
            x = np.array([[float(r[k]) if r[k].strip() else np.nan for k in fidx] for r in rs])
        except ValueError:
            bad = next(r for r in rs if any(not _is_number(r[k]) for k in fidx))
            k = next(k for k in fidx if not _is_number(bad[k]))
            raise UserError(f"{path}:{bad[-1]}: column '{header[k]}' has '{bad[k]}', not a number; "
                            "name the numeric feature columns with task.columns") from None
        xs.append(x)
        if labelled:
            ys = [r[col[label_column]].strip() for r in rs]
            missing = [r[-1] for r, y in zip(rs, ys) if y == ""]
            if missing:
                raise UserError(f"{path}:{missing[0]}: missing label in sequence '{sid}'; every row needs one")
            labels.append(ys[0] if len(set(ys)) == 1 else np.array(ys, dtype=object))
        else:
            labels.append(None)
    return SequenceSet(xs, labels, feats, names=order, source=str(path), row_labels=labelled)


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return not v.strip()


# ----------------------------------------------------------------------------------- .npz

def read_npz(path: Path, labelled: bool) -> SequenceSet:
    """``X`` padded (N, L, F) or (N, L), ``lengths`` (N,) (optional when all are L), ``y``
    (N,) or (N, ...) per sequence or (N, L) per step."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {k: archive[k] for k in archive.files}
    except ValueError:
        raise UserError(f"{path}: holds object (ragged) arrays, which are not read (they would run "
                        "pickled code); save X padded to (N, L, F) with a 'lengths' array") from None
    except Exception as e:  # not a zip, truncated: numpy's own words
        raise UserError(f"{path}: not a readable .npz file ({e})") from None
    if "X" not in data:
        raise UserError(f"{path}: no array 'X'; it has {', '.join(data) or 'none'} "
                        "(save X, lengths and y with numpy.savez)")
    X = data["X"]
    if X.dtype == object or X.ndim not in (2, 3):
        raise UserError(f"{path}: X must be padded to (N, L) or (N, L, F), got shape {X.shape}; "
                        "give ragged data as a padded array with a 'lengths' array")
    X = X.astype(np.float64)
    if X.ndim == 2:
        X = X[:, :, None]
    N, L = X.shape[0], X.shape[1]
    lengths = data["lengths"] if "lengths" in data else np.full(N, L)
    if lengths.shape != (N,) or not np.issubdtype(lengths.dtype, np.integer):
        raise UserError(f"{path}: lengths must be {N} integers, got shape {lengths.shape} of {lengths.dtype}")
    if (lengths < 1).any() or (lengths > L).any():
        i = int(np.argmax((lengths < 1) | (lengths > L)))
        raise UserError(f"{path}: lengths[{i}] = {lengths[i]} is outside 1..{L} (the padded length)")
    if labelled and "y" not in data:
        raise UserError(f"{path}: no array 'y' of labels")
    y = data["y"] if "y" in data else None
    if y is not None and y.shape[0] != N:
        raise UserError(f"{path}: y has {y.shape[0]} rows but X has {N} sequences")
    xs = [X[i, :lengths[i]] for i in range(N)]
    if y is None:
        labels: List[Any] = [None] * N
    elif y.ndim >= 2 and y.shape[1] == L and "y_lengths" not in data:  # a label per step
        labels = [y[i, :lengths[i]] for i in range(N)]
    elif "y_lengths" in data:  # label sequences (transcriptions), padded
        yl = data["y_lengths"]
        labels = [[str(v) for v in y[i, :yl[i]]] for i in range(N)]
    else:
        labels = [_scalar(v) for v in y]
    return SequenceSet(xs, labels, [f"x{k}" for k in range(X.shape[2])], source=str(path))


def _scalar(v):
    if isinstance(v, np.ndarray):
        return v.astype(np.float64) if v.ndim else _scalar(v.item())
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    if isinstance(v, (np.floating, float)):
        return float(v)
    return str(v)


# ----------------------------------------------------------------------------------- text

def tokenize(text: str, tokens: str) -> List[str]:
    return list(text) if tokens == "char" else text.split()


def read_text(path: Path, tokens: str, labelled: bool, *, pairs: bool = False) -> SequenceSet:
    """One example per line, ``label<TAB>text``, or with ``pairs`` ``source<TAB>target``
    (the label is then the target string); prediction inputs: the text (source) alone."""
    xs, labels, names = [], [], []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    shape = "source<TAB>target" if pairs else "label<TAB>text"
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "\t" in line:
            first, second = line.split("\t", 1)
            label, text = (second, first) if pairs else (first, second)
        elif labelled:
            raise UserError(f"{path}:{lineno}: no TAB; each line is '{shape}'")
        else:
            label, text = None, line
        xs.append(tokenize(text.strip() if pairs else text, tokens))
        labels.append(label.strip() if label is not None else None)
        names.append(f"line {lineno}")
    return SequenceSet(xs, labels, [], text=True, names=names, source=str(path))


# ------------------------------------------------------------------------- aeon's archives

def aeon_dataset_dir() -> Optional[Path]:
    """The folder of data sets inside the installed aeon wheel, found without importing aeon."""
    import importlib.util
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return folder if folder.is_dir() else None


def archive_files(name: str) -> Dict[str, Path]:
    """{"train": ..., "test": ...} .ts files of a data set aeon ships (e.g. JapaneseVowels)."""
    folder = aeon_dataset_dir()
    if folder is None:
        raise UserError(f"dataset '{name}' comes from the aeon package, which is not installed: "
                        "pip install 'rnntrain[datasets]' (or give the .ts files with --data/--test-data)")
    files = {"train": folder / name / f"{name}_TRAIN.ts", "test": folder / name / f"{name}_TEST.ts"}
    if not files["train"].is_file():
        shipped = sorted(p.name for p in folder.iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())
        from ...config.schema import closest
        raise UserError(f"aeon ships no dataset '{name}'{closest(name, shipped)}; it ships: {', '.join(shipped)}")
    return files
