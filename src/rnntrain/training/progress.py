"""Progress: a tqdm bar with the current loss in a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import Any, Dict, Optional


class Progress:
    """``mode``: "bar" (tqdm), "lines" (one line per round), or "off"."""

    def __init__(self, total: int, start: int, unit: str, mode: Optional[str] = None) -> None:
        if mode is None:
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.total, self.unit = mode, total, unit
        self.bar = None
        self._last = 0.0
        if mode == "bar":
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=start, unit=unit, dynamic_ncols=True, file=sys.stderr)

    def step(self, loss: float) -> None:
        """Latest training loss inside a round (throttled to 10 updates a second)."""
        if self.bar is not None:
            now = time.monotonic()
            if now - self._last > 0.1:
                self.bar.set_postfix_str(f"loss {loss:.4g}", refresh=True)
                self._last = now

    def end_round(self, row: Dict[str, Any]) -> None:
        shown = {k: row[k] for k in ("train_loss", "val_loss") if row.get(k) is not None}
        text = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.update(1)
        elif self.mode == "lines":
            print(f"{self.unit} {row['round']}/{self.total}  {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
