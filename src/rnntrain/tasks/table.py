r"""Tables as users have them: CSV in any common dialect, Excel, Parquet -> columns of text.

Read with pandas (``pandas.read_csv``'s C engine: 1.2 s for 2 million rows here, against
11.8 s for the standard library's ``csv`` module that rnntrain used before; pyarrow reads
them in 0.3 s but covers fewer dialects). What this module adds is the guessing a user
should not have to do, each guess written down:

- the delimiter, sniffed from the first lines among ``,`` ``;`` tab ``|``;
- a decimal comma (``3,14``), assumed when the delimiter is not a comma and numbers with a
  comma and no point appear; then ``.`` is a thousands separator (``1.234,5``); with a
  decimal point, ``,`` between digit groups is a thousands separator (``"1,234.5"``);
- missing values: empty, ``NA``, ``N/A``, ``NULL``, ``NaN``, ``None``, ``-``, ``?`` (any case).

Every cell stays text here (:func:`read_table`); :func:`numbers` turns a column into floats
and names the first cell that is not a number. Excel (``.xlsx``; needs openpyxl) and
Parquet (``.parquet``; needs pyarrow) come through pandas too: ``pip install 'rnntrain[files]'``.
"""
from __future__ import annotations

import codecs
import csv
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "?"})  # cells read as missing (any case)
DELIMITERS = ",;\t|"
NA_VALUES = sorted({v for m in MISSING for v in (m, m.upper(), m.capitalize())})  # as pandas wants them
_DECIMAL_COMMA = re.compile(r"^[-+]?\d{1,3}(\.\d{3})*,\d+$|^[-+]?\d+,\d+$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")


class Table:
    """header (C,) names as written (empty ones kept empty), columns {name: (T,) str array}
    in header order (empty names as column1, column2 ...), decimal_comma."""

    def __init__(self, header: List[str], names: List[str], columns: Dict[str, np.ndarray],
                 decimal_comma: bool, source: str) -> None:
        self.header, self.names, self.columns = header, names, columns
        self.decimal_comma, self.source = decimal_comma, source

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def _utf8_head(path: Path) -> str:
    """The file's first 64 kB as text, once the whole file is known to be UTF-8 (checked a
    megabyte at a time). pandas then reads the file itself: a decoded copy of a file of
    millions of rows, split into lines to sniff the first fifty, held ~20x its size."""
    decoder, offset = codecs.getincrementaldecoder("utf-8-sig")(), 0  # -sig: Excel's BOM
    with open(path, "rb") as f:
        head = f.read(65536)
        f.seek(0)
        while True:
            block = f.read(1 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                raise UserError(f"{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                                f"{offset + e.start}); convert it, e.g. iconv -f latin1 -t utf-8 in.csv > "
                                f"out.csv") from None
            if not block:
                return head.decode("utf-8-sig", errors="ignore")
            offset += len(block)


def _dialect(text: str) -> Tuple[str, bool]:
    """(delimiter, decimal comma) guessed from the first lines."""
    sample = "\n".join(line for line in text.splitlines()[:50] if line.strip())  # text: the file's head
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    if delimiter == ",":
        return delimiter, False
    cells = [c.strip().strip('"') for line in sample.splitlines()[1:] for c in line.split(delimiter)]
    return delimiter, any(_DECIMAL_COMMA.match(c) for c in cells)


def read_table(path) -> Table:
    """The table in ``path`` as text columns; one-line UserErrors for a missing, empty,
    header-only or ragged file, duplicate names, or a missing reader package."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}; check the path given to --data")
    suffix, decimal_comma = path.suffix.lower(), False
    try:
        if suffix in (".xlsx", ".xlsm", ".xls"):
            frame = pd.read_excel(path, keep_default_na=False, na_values=NA_VALUES)
            header = [("" if str(c).startswith("Unnamed:") else str(c)) for c in frame.columns]
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
            header = [str(c) for c in frame.columns]
        else:
            head = _utf8_head(path)
            if not head.strip():
                raise UserError(f"{path} is empty; it needs a header row naming the columns, "
                                f"then one row per time step")
            delimiter, decimal_comma = _dialect(head)
            first = next(line for line in head.splitlines() if line.strip())
            header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
            # numbers parse in pandas' C code; a column with anything else stays text and
            # goes through numbers() (thousands separators in a comma file, quotes ...)
            frame = pd.read_csv(path, encoding="utf-8-sig", sep=delimiter, keep_default_na=False, na_values=NA_VALUES,
                                decimal="," if decimal_comma else ".",  # thousands: numbers() (31.01.2020 is a date)
                                skip_blank_lines=True, skipinitialspace=True)
    except ImportError as e:
        raise UserError(f"reading {path.suffix} files needs {e.name}: pip install 'rnntrain[files]'") from None
    except pd.errors.ParserError as e:
        raise UserError(f"{path}: {str(e).strip().splitlines()[-1]}; fix the row or add the missing "
                        f"column names") from None
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise UserError(f"{path} has duplicate column names {dupes}; rename them in the header")
    if len(frame) == 0:
        raise UserError(f"{path} has a header but no data rows; add one row per time step")
    names = [h or f"column{j + 1}" for j, h in enumerate(header)]
    columns = {}
    for j, n in enumerate(names):
        col = frame.iloc[:, j]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            columns[n] = col.to_numpy(dtype=np.float64)  # NaN: missing
        else:
            columns[n] = col.astype(object).where(col.notna(), "").astype(str).to_numpy(dtype=object)
    return Table(header, names, columns, decimal_comma, str(path))


def numbers(table: Table, name: str) -> Tuple[np.ndarray, Optional[Tuple[int, str]]]:
    """(floats (T,) with NaN for missing cells, the first (data row, cell) that is not a
    number, or None). Plain numbers take pandas' vectorised parser; only the cells it
    refuses are looked at again (missing markers, thousands separators, quotes, spaces)."""
    import pandas as pd

    column = table.columns[name]
    if column.dtype != object:  # parsed as numbers already
        return column, None
    cells = pd.Series(column, dtype=object)
    if table.decimal_comma:
        cells = cells.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    retry = np.flatnonzero(np.isnan(values))
    for i in retry:  # usually none, or the few missing cells
        raw = str(table.columns[name][i]).strip()
        if raw.lower() in MISSING:
            continue
        text = raw.strip('"').strip()
        text = text.replace(".", "").replace(",", ".") if table.decimal_comma else _THOUSANDS.sub("", text)
        try:
            number = float(text)
        except ValueError:
            return values, (int(i), raw)
        values[i] = number
    return values, None
