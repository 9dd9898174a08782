"""The forecasting task's config: what a user sets for ``--task forecast`` (validated data)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config.schema import absolute_paths, check
from .heads import HEADS
from .sampling import SamplingConfig
from .scaling import SCALES
from .series import BUILTIN_SERIES, check_split

NORMALIZE = ("auto", "none", "level", "window", "season")
CALENDAR = ("auto", "none")
WINDOW_STD_FLOOR = 0.1  # normalize = window: a flat window's std, in scaled units, is at least this


@dataclass(frozen=True)
class ForecastConfig:
    """Forecasting task; the defaults are the seed PyTorch example (sine, 20 -> 1, 80/20)."""

    series: str = "sine"  # built-in series when data is empty: sine | noisy-sine | oscillator | mackey-glass | mackey-glass-30 | lorenz | narma10
    data: str = ""  # CSV file; when set it replaces `series`
    # the column naming each series of a long file (a row per series and time step): one
    # global model over all of them, each scaled and split on its own (tasks/panel.py)
    series_id: str = ""
    columns: tuple[str, ...] = ()  # input columns (empty: every numeric column)
    targets: tuple[str, ...] = ()  # target columns (empty: the input columns)
    # known-future inputs (--future-column): read, never predicted; a forecast past the end
    # reads them from the file's last rows whose targets are empty (or from --data new.csv)
    future: tuple[str, ...] = ()
    # calendar features of the date column as known-future inputs (tasks/calendar.py):
    # auto (cycles from the rows' spacing: hour, weekday, day of year, month) | none
    calendar: str = "none"
    # what the outputs forecast: point | gaussian (mean and scale, NLL loss) | quantile
    # (pinball loss); the probabilistic heads give prediction intervals (tasks/heads.py)
    head: str = "point"
    interval: float = 0.9  # the prediction interval's coverage (gaussian; quantile default levels)
    quantiles: tuple[float, ...] = ()  # quantile head's levels (empty: the interval's ends and 0.5)
    # input steps per example; 0: the seed's 20 for a built-in series, 12 for a file
    # (shortened so that the validation split holds a window)
    window: int = 0
    horizon: int = 1  # future steps predicted per example (direct multi-output)
    # emit the horizon's steps one at a time with an encoder-decoder (models/seq2seq.py),
    # each prediction fed back to the decoder, instead of all at once from one readout
    decoder: bool = False
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # the decoder's scheduled sampling
    # train/val/test fractions, in time order; empty: the seed's 0.8/0.2 for a built-in
    # series, 0.7/0.15/0.15 for a file (a user's data gets a test split)
    split: tuple[float, ...] = ()
    # none | standard | minmax, fitted on the train split only; auto: none for a built-in
    # series (the seed's), standard for a file (real columns come in any units: pressure
    # near 1000 hPa left unscaled saturates a tanh network)
    scale: str = "auto"
    # the last N rows are the test split (the rows before split by `split`'s train:val ratio);
    # 0: `split` cuts all three ("hold out the last 24 months": test_rows = 24)
    test_rows: int = 0
    end: int = 0  # use the series' first `end` rows only (0: all; rnntrain backtest's folds)
    interpolate: bool = False  # fill missing values linearly instead of failing
    # the seasonal-naive baseline's period in rows; 0: from the spacing of the date column
    # (hourly 24, daily 7, weekly 52, monthly 12, quarterly 4; none without dates)
    season: int = 0
    # each window relative to itself, the forecast mapped back (trend and level shifts):
    # none | level (minus the window's last value) | window (minus the window's mean, over its
    # std; RevIN, NeuralForecast's per-window scalers) | season (each forecast step minus the
    # value one season before it: seasonal differencing); auto: level for a file whose targets
    # are all inputs, else none (built-in series: the seed's). Needs every target an input.
    normalize: str = "auto"
    # closed-loop training: from round 2 on, also train on the windows the model makes by
    # feeding its own predictions back this many times (tasks/closed_loop.py; 0: off)
    rollout: int = 0
    # std of Gaussian noise added to training inputs (scaled units); stabilises recursive forecasts
    input_noise: float = 0.0
    length: int = 1000  # length of a built-in series (the seed's 1000 points)
    # irregular sampling: the column of each row's time (numbers, or the date column's name);
    # the gap since the previous row, in units of the median gap, becomes the last input "dt"
    # (known-future, unscaled): what --cell ctrnn --set model.ct_dt=0 integrates over
    time_column: str = ""

    def __post_init__(self):
        absolute_paths(self, "data")
        if not self.window and not self.data:
            object.__setattr__(self, "window", 20)  # the seed's seq_len (a file's: see the task)
        if not self.split:  # resolved here, so config.toml shows what ran
            object.__setattr__(self, "split", (0.7, 0.15, 0.15) if self.data else (0.8, 0.2, 0.0))
        if self.scale == "auto":
            object.__setattr__(self, "scale", "standard" if self.data else "none")
        check(self.window >= 0, f"forecast window must be >= 1 (0: automatic), got {self.window}")
        check(self.normalize in NORMALIZE, f"normalize must be one of {', '.join(NORMALIZE)}, got '{self.normalize}'")
        check(self.test_rows >= 0 and self.end >= 0, f"test_rows and end count rows: >= 0 (0: off), got "
                                                    f"{self.test_rows} and {self.end}")
        check(self.season >= 0, f"season must be >= 0 rows (0: from the dates), got {self.season}")
        check(self.horizon >= 1, f"forecast horizon must be >= 1, got {self.horizon}")
        check_split(self.split, "forecast split")
        check(self.scale in SCALES,
              f"unknown scale '{self.scale}'; choose one of: {', '.join(SCALES)}")
        check(self.calendar in CALENDAR, f"calendar must be one of {', '.join(CALENDAR)}, got '{self.calendar}'")
        check(self.head in HEADS, f"unknown head '{self.head}'; choose one of: {', '.join(HEADS)}")
        check(0 < self.interval < 1, f"interval is a coverage in (0, 1), e.g. 0.9; got {self.interval}")
        check(not self.quantiles or (0.5 in self.quantiles and len(set(self.quantiles)) == len(self.quantiles)
                                     and all(0 < q < 1 for q in self.quantiles)),
              f"quantiles must be distinct levels in (0, 1) including 0.5 (the point forecast), got "
              f"{list(self.quantiles)}")
        check(not (self.decoder and self.head != "point"),
              f"a decoder feeds each predicted value back to itself, one number per value; head "
              f"\"{self.head}\" predicts a distribution: use task.decoder = false with it")
        check(not self.series_id or bool(self.data), "task.series_id names the series of a long file: give "
                                                      "the file with --data")
        check(self.rollout >= 0, f"rollout counts fed-back steps: >= 0 (0: off), got {self.rollout}")
        check(not (self.rollout and self.decoder), "task.rollout feeds a window model's forecasts back into "
                                                   "its windows; a decoder feeds itself already (task.sampling)")
        check(self.input_noise >= 0, f"input_noise must be >= 0, got {self.input_noise}")
        check(self.length > 0, f"series length must be > 0, got {self.length}")
        check(not self.time_column or bool(self.data), "task.time_column names a column of your file: "
                                                        "give the file with --data")
        check(bool(self.data) or self.series in BUILTIN_SERIES,
              f"unknown series '{self.series}'; choose one of: {', '.join(BUILTIN_SERIES)}, "
              f"or give a CSV file with --data")
