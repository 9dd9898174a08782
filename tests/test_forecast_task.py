"""The forecasting task: seed-identical windows, leakage-free scaling, metrics and baselines,
recursive forecasts with feedback, saved state for inference."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import rnntrain
from rnntrain.errors import UserError
from rnntrain.tasks.forecast import ForecastConfig, ForecastTask
from rnntrain.tasks.scaling import Scaler
from rnntrain.tasks.series import sine


class Affine(nn.Module):
    """outputs = a * (last input row at ``cols``) + b, repeated ``horizon`` times with
    per-step factors; the calling convention outputs, state = model(inputs, state)."""

    def __init__(self, cols=(0,), a=(1.0,), b=(0.0,)):
        super().__init__()
        self.cols, self.a, self.b = list(cols), list(a), list(b)

    def forward(self, x, state=None):
        last = x[:, -1, self.cols]  # (N, len(cols))
        return torch.cat([a * last + b for a, b in zip(self.a, self.b)], dim=1), state


def csv_task(tmp_path, columns, rows, **kw):
    """A task on a CSV made here; unscaled, unnormalised and split 0.8/0.2 unless ``kw`` says otherwise
    (files get standard scaling and a test split by default, checked below), so that the
    numbers stay checkable by hand."""
    path = tmp_path / "s.csv"
    path.write_text(",".join(columns) + "\n" + "\n".join(",".join(map(str, r)) for r in rows))
    return ForecastTask(ForecastConfig(data=str(path), **{"scale": "none", "split": (0.8, 0.2),
                                                          "normalize": "none", **kw}))


def ramp_task(tmp_path, n=10, **kw):
    """x_t = t: every number below is checkable by hand."""
    return csv_task(tmp_path, ["x"], [[t] for t in range(n)], **kw)


# ---------------------------------------------------------------- config

def test_a_users_file_is_scaled_and_gets_a_test_split_while_built_in_series_keep_the_seeds(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("pressure\n" + "\n".join(str(1000 + (t % 7)) for t in range(200)))
    mine = ForecastConfig(data=str(path))
    assert (mine.scale, mine.split) == ("standard", (0.7, 0.15, 0.15))
    assert (ForecastConfig().scale, ForecastConfig().split) == ("none", (0.8, 0.2, 0.0))
    assert ForecastConfig(data=str(path), scale="none", split=(0.9, 0.1)).scale == "none"
    task = ForecastTask(mine)
    x = torch.cat([b.inputs for b in task.batches("train", 64)])
    assert abs(float(x.mean())) < 0.2 and 0.5 < float(x.std()) < 1.5  # scaled, not ~1000
    assert task.split_size("test") > 0


@pytest.mark.parametrize("kw, words", [
    (dict(window=-1), "window"), (dict(horizon=0), "horizon"),
    (dict(split=(0.5, 0.2)), "sum to 1"), (dict(split=(0.0, 1.0)), "train fraction"),
    (dict(split=(1.2, -0.2)), ">= 0"), (dict(scale="log"), "none, standard, minmax"),
    (dict(input_noise=-1.0), "input_noise"), (dict(length=0), "length"),
    (dict(series="cosine"), "noisy-sine")])
def test_config_rejects_bad_values(kw, words):
    with pytest.raises(UserError, match=words):
        ForecastConfig(**kw)


# ---------------------------------------------------------------- windows and scaling

class SineDataset(torch.utils.data.Dataset):  # verbatim from the seed program
    def __init__(self, data, seq_len):
        self.data, self.seq_len = data, seq_len

    def __len__(self):
        return len(self.data) - self.seq_len

    def __getitem__(self, idx):
        return self.data[idx:idx + self.seq_len].unsqueeze(-1), self.data[idx + self.seq_len]


def test_default_windows_equal_the_seed_sine_dataset_items():
    task = ForecastTask(ForecastConfig(), dtype=torch.float64)
    data = torch.from_numpy(sine(1000).values[:, 0])
    assert task.spec.input_size == 1 and task.spec.output_size == 1 and not task.spec.tokens
    for split, part in (("train", data[:800]), ("val", data[800:])):
        ref = SineDataset(part, 20)
        batch = next(task.batches(split, 10_000, generator=torch.Generator().manual_seed(3)))
        x, y = batch.inputs, batch.targets
        if split == "train":  # shuffled by randperm(N, generator): undo the permutation
            perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
            x, y = x[torch.argsort(perm)], y[torch.argsort(perm)]
        assert len(x) == len(ref) == task.split_size(split)
        xs = torch.stack([ref[i][0] for i in range(len(ref))])
        ys = torch.stack([ref[i][1] for i in range(len(ref))])
        assert torch.equal(x, xs) and torch.equal(y[:, 0], ys)


def test_scaler_is_fitted_on_train_rows_only(tmp_path):
    rows = [[float(t)] for t in range(20)]
    a = csv_task(tmp_path, ["x"], rows, window=2, split=(0.5, 0.5), scale="standard")
    rows[15] = [1000.0]  # a validation row
    b = csv_task(tmp_path, ["x"], rows, window=2, split=(0.5, 0.5), scale="standard")
    assert a.scaler.state_dict() == b.scaler.state_dict()
    np.testing.assert_allclose(a.scaler.offset, [4.5])  # mean of 0..9
    np.testing.assert_allclose(a.scaler.scale, [np.std(np.arange(10))])


def test_a_files_val_windows_forecast_every_val_row_reading_inputs_from_before(tmp_path):
    task = ramp_task(tmp_path, n=100, window=5, horizon=3, split=(0.5, 0.3, 0.2))
    val = torch.cat([b.inputs for b in task.batches("val", 7)])
    val_y = torch.cat([b.targets for b in task.batches("val", 7)])
    train_y = torch.cat([b.targets for b in task.batches("train", 7)])
    assert val.min() == 45 and val_y.min() == 50 and val_y.max() == 79 and train_y.max() == 49
    assert len(val) == 30 - 3 + 1  # every val row is forecast (at each horizon step it can be)
    assert val_y[0].tolist() == [50, 51, 52]  # the next `horizon` values after the window
    test_x = torch.cat([b.inputs for b in task.batches("test", 7)])
    assert test_x.min() == 75 and test_x.max() == 96  # up to the last row with 3 after it


def test_a_builtin_series_keeps_the_seeds_windows_within_each_split():
    from rnntrain.tasks.forecast import ForecastConfig, ForecastTask
    task = ForecastTask(ForecastConfig(series="sine"))  # 1000 rows, 800/200, window 20
    assert task.split_size("val") == 200 - 20 - 1 + 1
    first = next(task.batches("val", 1)).inputs[0, :, 0]
    np.testing.assert_allclose(first.numpy(), task.scaled[800:820, 0], rtol=1e-6)


def test_scaler_kinds_invert_and_survive_constant_columns():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    std = Scaler("standard").fit(x)
    np.testing.assert_allclose(std.transform(x)[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    np.testing.assert_array_equal(std.scale[1], 1.0)  # constant column: no division by zero
    mm = Scaler("minmax").fit(x)
    np.testing.assert_allclose(mm.transform(x)[:, 0], [0, 0.5, 1])
    t = torch.tensor(x, dtype=torch.float32)
    torch.testing.assert_close(mm.inverse(mm.transform(t)), t)
    restored = Scaler()
    restored.load_state_dict(json.loads(json.dumps(std.state_dict())))
    np.testing.assert_array_equal(restored.transform(x), std.transform(x))


def test_too_short_series_names_lengths_and_fix(tmp_path):
    with pytest.raises(UserError, match="train split of s.csv has 8 rows.*20 \\+ 1 = 21.*--window"):
        ramp_task(tmp_path, n=10, window=20)
    with pytest.raises(UserError, match="val split of s.csv has 2 rows.*horizon 3.*--horizon"):
        ramp_task(tmp_path, n=12, window=2, horizon=3, split=(0.84, 0.16))


def test_a_files_automatic_window_is_12_rows_or_what_its_training_split_holds_twice(tmp_path):
    assert ramp_task(tmp_path, n=200).window == 12
    assert ramp_task(tmp_path, n=20, split=(0.7, 0.15, 0.15)).window == 6  # 14 train rows / 2 - horizon 1
    assert ramp_task(tmp_path, n=36, split=(0.7, 0.15, 0.15)).window == 11  # 25 train rows
    assert ForecastTask(ForecastConfig(length=200)).window == 20  # a built-in series: the seed's


# ---------------------------------------------------------------- batches

def test_train_batches_are_seeded_shuffles_and_other_splits_are_ordered():
    task = ForecastTask(ForecastConfig(length=200, window=5))
    def firsts(split, seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([b.inputs[:, 0, 0] for b in task.batches(split, 16, generator=g)])
    assert torch.equal(firsts("train", 1), firsts("train", 1))
    assert not torch.equal(firsts("train", 1), firsts("train", 2))
    assert torch.equal(firsts("train", 1).sort().values,
                       task._windows["train"].x[:, 0, 0].sort().values)  # a permutation
    assert torch.equal(firsts("val", 1), task._windows["val"].x[:, 0, 0])
    assert all(not b.continues for b in task.batches("train", 16))


def test_input_noise_is_added_to_train_inputs_only():
    task = ForecastTask(ForecastConfig(length=2000, input_noise=0.5))
    g = torch.Generator().manual_seed(0)
    noisy = next(task.batches("train", 10_000, generator=g))
    clean = task._windows["train"]
    order = torch.randperm(len(clean.x), generator=torch.Generator().manual_seed(0))
    diff = noisy.inputs - clean.x[order]
    assert abs(diff.std().item() - 0.5) < 0.01 and torch.equal(noisy.targets, clean.y[order])
    assert torch.equal(next(task.batches("val", 10_000)).inputs, task._windows["val"].x)


# ---------------------------------------------------------------- metrics

def test_persistence_baseline_on_a_ramp(tmp_path):
    task = ramp_task(tmp_path, window=2, horizon=2, split=(0.5, 0.5))
    # val rows 5..9, windows reaching back: [3,4]->[5,6], [4,5]->[6,7], ..., [6,7]->[8,9];
    # persistence says 4,4 / 5,5 / 6,6 / 7,7: off by 1 and 2
    m = task.evaluate(Affine(a=(1.0, 1.0), b=(1.0, 2.0)), "val")  # the exact ramp
    assert m["mse"] == 0 and m["mae"] == 0 and m["loss"] == 0
    assert m["persistence_mse"] == pytest.approx(2.5)
    assert m["persistence_mae"] == pytest.approx(1.5)
    assert m["persistence_nrmse"] == pytest.approx(np.sqrt(2.5) / np.std([5, 6, 6, 7, 7, 8, 8, 9]))


def test_loss_is_scaled_mse_and_metrics_are_in_original_units(tmp_path):
    task = ramp_task(tmp_path, n=40, window=3, split=(0.5, 0.5), scale="standard")
    model = Affine()  # predicts the last input: off by one step of the ramp
    model.train()
    m = task.evaluate(model, "val")
    assert model.training  # restored
    assert m["mse"] == pytest.approx(1.0) and m["mae"] == pytest.approx(1.0)
    assert m["loss"] == pytest.approx(1.0 / np.var(np.arange(20)), rel=1e-5)
    assert m["mse"] == pytest.approx(m["persistence_mse"])
    assert task.evaluate(model, "test") == {}


def test_no_persistence_keys_when_a_target_is_not_an_input():
    task = ForecastTask(ForecastConfig(series="oscillator", columns=("x", "F"), targets=("v",),
                                       length=300))
    m = task.evaluate(Affine(), "val")
    assert {"loss", "mse", "mae", "nrmse"} <= set(m) and not any("persistence" in k for k in m)


# ---------------------------------------------------------------- recursive forecasts

def test_recursive_forecast_feeds_predictions_back_horizon_rows_at_a_time(tmp_path):
    task = ramp_task(tmp_path, n=20, window=3, horizon=2, split=(0.5, 0.5))
    doubling = Affine(a=(2.0, 4.0), b=(0.0, 0.0))  # last v -> (2v, 4v)
    out = task.recursive_forecast(doubling, start_row=10, steps=5)  # context 7, 8, 9
    np.testing.assert_allclose(out[:, 0], [18, 36, 72, 144, 288])
    assert out.shape == (5, 1)


def test_recursive_forecast_equals_the_seed_loop_for_a_real_rnn():
    torch.manual_seed(0)

    class Seed(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = nn.RNN(1, 8, batch_first=True), nn.Linear(8, 1)

        def forward(self, x, state=None):
            out, h = self.rnn(x, state)
            return self.fc(out[:, -1, :]), h

    model, task = Seed(), ForecastTask(ForecastConfig())
    ours = task.recursive_forecast(model, 800, 200)[:, 0]
    data = torch.from_numpy(sine(1000).values[:, 0]).float()
    current, ref = data[780:800].reshape(1, 20, 1), []
    with torch.no_grad():
        for _ in range(200):
            pred, _ = model(current)
            ref.append(pred.item())
            current = torch.cat([current[:, 1:, :], pred.unsqueeze(1)], dim=1)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_known_future_inputs_come_from_the_series_and_must_exist_past_its_end(tmp_path):
    task = ForecastTask(ForecastConfig(series="oscillator", columns=("x", "v"), future=("F",),
                                       targets=("x", "v"), length=300, window=4))
    assert task.inputs == ["x", "v", "F"] and task.outputs == ["x", "v"]
    echo_force = Affine(cols=(2, 2))  # predicts x = v = the last row's force
    out = task.recursive_forecast(echo_force, start_row=240, steps=6)
    F = task.series.values[:, 2]
    np.testing.assert_allclose(out[:, 0], F[239:245], rtol=1e-6)  # fed-back F is the true one
    with pytest.raises(UserError, match="known-future column.*F there"):
        task.recursive_forecast(echo_force, start_row=295, steps=10)
    with pytest.raises(UserError, match="known-future column.*F there"):
        task.forecast_future(echo_force, 3)


def test_an_input_that_is_neither_target_nor_known_is_forecast_too():
    task = ForecastTask(ForecastConfig(series="oscillator", columns=("x", "F"), targets=("x",),
                                       length=300, window=4))
    assert task.outputs == ["x", "F"] and task.spec.output_size == 2
    y = next(task.batches("val", 1)).targets[0]  # both columns of the next row
    np.testing.assert_allclose(y.numpy(), task.scaled[244, [0, 2]], rtol=1e-6)
    swap = Affine(cols=(1, 0))  # "x" <- last F, "F" <- last x: both fed back
    out = task.forecast_future(swap, 4)  # past the end: F is predicted, so this works
    last_x, last_f = task.series.values[-1, 0], task.series.values[-1, 2]
    np.testing.assert_allclose(out[:, 0], [last_f, last_x, last_f, last_x], rtol=1e-6)
    assert out.shape == (4, 1)  # the targets only


def test_recursive_forecast_needs_targets_among_inputs():
    task = ForecastTask(ForecastConfig(series="oscillator", columns=("x",), targets=("v",),
                                       length=300))
    with pytest.raises(UserError, match="every target must be an input"):
        task.recursive_forecast(Affine(), 250, 5)


def test_forecast_future_from_saved_state_needs_no_data(tmp_path):
    task = ramp_task(tmp_path, n=30, window=4, split=(0.7, 0.3), scale="minmax")
    step = Affine(b=(1.0 / 20,))  # +1 in original units: minmax scale is 20 (0..20)
    np.testing.assert_allclose(task.forecast_future(step, 3)[:, 0], [30, 31, 32])
    state = json.loads(json.dumps(task.state_dict()))  # JSON-able
    (tmp_path / "s.csv").unlink()
    fresh = ForecastTask.for_inference(task.config, state, device="cpu", dtype=torch.float32)
    np.testing.assert_allclose(fresh.forecast_future(step, 3)[:, 0], [30, 31, 32])
    assert fresh.spec == task.spec and fresh.evaluate(step, "val") == {}


def test_report_writes_plot_and_recursive_mse_over_validation(tmp_path):
    task = ramp_task(tmp_path, n=40, window=3, split=(0.75, 0.25))
    out = task.report(Affine(), tmp_path)  # recursive "last value" forecast stays at 29
    assert (tmp_path / "forecast.png").stat().st_size > 1000
    assert out["recursive_points"] == 10
    assert out["recursive_mse"] == pytest.approx(np.mean((np.arange(30, 40) - 29.0) ** 2))


def test_a_target_that_never_changes_is_refused_in_one_line_and_is_fine_as_an_input(tmp_path):
    t = np.arange(300)
    path = tmp_path / "flat.csv"
    path.write_text("t,y,c\n" + "".join(f"{i},{np.sin(i / 10):.6f},3\n" for i in t))
    base = {"task.data": str(path), "task.columns": ["y", "c"], "train.epochs": 1, "model.hidden": 4}
    with pytest.raises(UserError, match="target column c never changes.*--column"):
        rnntrain.train(rnntrain.load_config(base=base))
    run = rnntrain.train(rnntrain.load_config(base={**base, "task.targets": ["y"]}))
    assert np.isfinite(run.summary["metrics"]["val"]["mase"])


def test_values_whose_squares_overflow_are_refused_in_one_line_naming_a_rescaling(tmp_path):
    path = tmp_path / "huge.csv"  # finite, but 9e307 squared is inf: scaling and errors would be NaN
    path.write_text("t,y\n" + "".join(f"{i},{float(9e307 * np.sin(i / 10))!r}\n" for i in range(300)))
    with pytest.raises(UserError, match="as large as 9e.307.*divide the column by a power of ten"):
        rnntrain.train(rnntrain.load_config(base={"task.data": str(path), "train.epochs": 1}))
