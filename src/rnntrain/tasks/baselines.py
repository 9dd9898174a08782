r"""The forecasts a model must beat, and the errors every forecast is scored by.

For a forecast origin o (the last observed row of a window) and horizon step h = 1..H:

    persistence      ŷ_{o+h} = y_o                          (the last observed value)
    seasonal naive   ŷ_{o+h} = y_{o+h-m·ceil(h/m)}          (the same point one season back)
    mean             ŷ_{o+h} = mean of y over the training rows

with m the season length in rows (:func:`season_length`: from the spacing of the data's
dates, or given). These are statsforecast's Naive, SeasonalNaive and HistoricAverage; a few
lines of NumPy, so no dependency. Errors (:func:`errors`), per target column c and then
averaged over columns so that columns in different units weigh the same::

    nrmse = RMSE_c / std_c(truth)
    smape = 100 · mean 2|ŷ - y| / (|ŷ| + |y|)   (M4's symmetric MAPE, in percent)
    mase  = MAE_c / mean_t |y_t - y_{t-m}| over the training rows  (Hyndman & Koehler 2006;
            m = 1 without a season)
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

# median spacing of the dates (days) -> the season in rows: a week of days, a year of weeks,
# months or quarters (rows spaced under a day: a day of them); yearly data has no season
SEASONS = ((1.0, 7), (7.0, 52), (30.4, 12), (91.3, 4))


def season_length(times: Optional[Sequence[str]]) -> int:
    """The season in rows implied by the spacing of ``times`` (hourly 24, half-hourly 48, ...:
    a day; daily 7, business days 5, weekly 52, monthly 12, quarterly 4); 1 (none) for
    yearly, irregular or missing dates."""
    if times is None or len(times) < 3:
        return 1
    from .series import parse_date  # local: series is the heavier module
    parsed = [parse_date(str(t)) for t in times[:500]]
    if any(p is None for p in parsed):
        return 1  # also plain years (1821, 1822 ...): yearly, no season
    gaps = np.diff([p.timestamp() for p in parsed]) / 86400.0  # days
    step = float(np.median(gaps))
    if 0 < step < 0.9 and abs(1 / step - round(1 / step)) < 0.05 * (1 / step):
        return int(round(1 / step))  # several rows a day (hourly, half-hourly ...): a day
    if abs(step - 1.0) <= 0.15 and len(parsed) >= 10 and all(p.weekday() < 5 for p in parsed):
        return 5  # business days: a week is five rows
    for days, season in SEASONS:
        if abs(step - days) <= 0.15 * days:
            return season
    return 1


def seasonal_naive(values: np.ndarray, target_rows: np.ndarray, season: int) -> np.ndarray:
    """values (T, C) the whole series, target_rows (N, H) the rows forecast from origins
    target_rows[:, 0] - 1 -> (N, H, C): each the value one season before, within the past
    of its origin (rows before the start of the series read row 0)."""
    h = np.arange(1, target_rows.shape[1] + 1)
    back = season * np.ceil(h / season).astype(np.int64)  # (H,)
    return values[np.clip(target_rows - back, 0, None)]


def mase_scale(train: np.ndarray, season: int) -> np.ndarray:
    """(C,) mean |y_t - y_{t-m}| over the training rows (m = season, or 1)."""
    m = season if len(train) > season else 1
    scale = np.abs(train[m:] - train[:-m]).mean(0)
    return np.where(scale > 0, scale, np.nan)


def errors(pred: np.ndarray, truth: np.ndarray, scale: Optional[np.ndarray] = None) -> Dict[str, float]:
    """mse, mae, nrmse, smape (and mase, given :func:`mase_scale`) of (N, H, C) forecasts."""
    err = pred - truth
    c = err.shape[-1]
    rmse_c = np.sqrt((err ** 2).reshape(-1, c).mean(0))
    std_c = truth.reshape(-1, c).std(0)
    out = {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))),
           "nrmse": float(np.mean(rmse_c / std_c)) if np.all(std_c > 0) else float("nan")}
    if scale is not None:
        out["mase"] = float(np.mean(np.abs(err).reshape(-1, c).mean(0) / scale))
    denominator = np.abs(pred) + np.abs(truth)
    ratio = np.divide(2 * np.abs(err), denominator, out=np.zeros_like(denominator), where=denominator > 0)
    ratio[~np.isfinite(err)] = np.nan  # a non-finite forecast is no perfect one
    out["smape"] = float(100 * np.mean(ratio))  # M4's, in percent; 0/0 (both zero) counts as 0
    return out


def verdict(metrics: Dict[str, float], baselines: Sequence[str]) -> Dict[str, object]:
    """Which baselines the model beats on one split's metrics, by MASE (scale-free, defined
    even where the truth is constant), or NRMSE when there is no MASE; {} when neither is a
    number."""
    for measure in ("mase", "nrmse"):
        model = metrics.get(measure)
        if model is not None and model == model:
            scores = {b: metrics[f"{b}_{measure}"] for b in baselines if f"{b}_{measure}" in metrics}
            return {"measure": measure, "score": model, "baselines": scores,
                    "beats": [b for b, v in scores.items() if model < v],
                    "loses_to": [b for b, v in scores.items() if not model < v]}
    return {}
