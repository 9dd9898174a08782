"""`rnntrain export`: every cell and direction leaves Python as ONNX (checked by onnxruntime)
and TorchScript, whole sequences and one streaming step, equal to rnntrain's outputs."""
from __future__ import annotations

import json

import pytest
import torch

import rnntrain
from rnntrain.cli.main import main
from rnntrain.exporting import runner
from rnntrain.models.sequence_model import CELL_NAMES
from rnntrain.training import load_run

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

STEPS = 6  # the exported length (short: the exporter unrolls it)


def run_of(tmp_path, name="run", **keys):
    keys = {"model.hidden": 5, "train.epochs": 1, "seed": 1, **keys}
    if keys.get("model.cell") == "esn":
        keys["algorithm.name"] = "esn"
    config = rnntrain.load_config(overrides=[f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                                             for k, v in keys.items()])
    rnntrain.train(config, tmp_path / name)
    return tmp_path / name


def inputs(run, n=3, steps=STEPS):
    g = torch.Generator().manual_seed(5)
    spec = load_run(run).task.spec
    if spec.tokens:
        return torch.randint(0, spec.input_size, (n, steps), generator=g)
    return torch.randn(n, steps, spec.input_size, generator=g)


def ours(run, x):
    model = load_run(run).model
    with torch.no_grad():
        return model(x, None, final_state=False)[0]


# every cell both ways, except the reservoir, which runs forwards only
CASES = [(cell, both) for cell in sorted(CELL_NAMES) for both in (False, True) if not (cell == "esn" and both)]


@pytest.mark.slow
@pytest.mark.parametrize("cell, bidirectional", CASES)
def test_every_cell_and_direction_as_onnx_equals_rnntrain(tmp_path, cell, bidirectional):
    layers = 1 if cell == "esn" else 2
    run = run_of(tmp_path, **{"model.cell": cell, "model.bidirectional": bidirectional, "model.layers": layers})
    done = rnntrain.export(run, fmt="onnx", steps=STEPS)
    meta = json.loads(done.meta.read_text())
    # a fresh batch of another size, through onnxruntime: the batch axis is free
    x = inputs(run, n=4)
    got = runner(done.files["sequence"], "onnx", ["x"])(x)[0]
    assert torch.allclose(got.double(), ours(run, x).double(), atol=1e-5, rtol=1e-5)
    assert meta["forms"]["sequence"]["shapes"]["x"] == ["batch", STEPS, 1]
    if bidirectional:
        assert "step" not in done.files and "backwards" in done.skipped["step"]
        return
    # streaming: the step form carried over the steps ends where the sequence form does
    names = meta["forms"]["step"]["inputs"]
    step = runner(done.files["step"], "onnx", names)
    state = [torch.zeros(layers, 4, n) for n in
             [meta["forms"]["step"]["shapes"][k][2] for k in names[1:]]]
    for t in range(STEPS):
        y, *state = step(x[:, t], *state)
    assert torch.allclose(y.double(), ours(run, x).double(), atol=1e-5, rtol=1e-5)
    assert names == (["x", "h", "c"] if cell in ("lstm", "peephole", "ln-lstm") else ["x", "h"])


def test_per_step_outputs_and_token_inputs_step_by_step(tmp_path):
    """A per-step readout on token ids (a character model): the step's output at t is the
    sequence's output at t, for sequences longer than the exported length."""
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    run = run_of(tmp_path, **{"task.kind": "text", "task.text": str(text), "model.cell": "gru"})
    done = rnntrain.export(run, fmt="onnx", steps=STEPS)
    x = inputs(run, n=2, steps=3 * STEPS)
    want = ours(run, x)
    step = runner(done.files["step"], "onnx", ["x", "h"])
    h = torch.zeros(1, 2, 5)
    for t in range(x.shape[1]):
        y, h = step(x[:, t], h)
        assert torch.allclose(y, want[:, t], atol=1e-5, rtol=1e-5)


def test_torchscript_loads_without_rnntrain_code(tmp_path, capsys):
    run = run_of(tmp_path, **{"model.cell": "lstm"})
    assert main(["export", str(run), "--format", "torchscript", "--steps", str(STEPS)]) == 0
    printed = capsys.readouterr().out
    assert "sequence:" in printed and "step:" in printed
    module = torch.jit.load(str(run / "export" / "model.pt"))
    x = inputs(run, n=7)
    assert torch.allclose(module(x), ours(run, x), atol=1e-6)


def test_float64_runs_export_in_float64(tmp_path):
    run = run_of(tmp_path, **{"model.cell": "gru", "dtype": "float64"})
    done = rnntrain.export(run, fmt="onnx", forms=("sequence",), steps=STEPS)
    x = inputs(run).double()
    got = runner(done.files["sequence"], "onnx", ["x"])(x)[0]
    assert got.dtype == torch.float64 and torch.allclose(got, ours(run, x), atol=1e-12)


def test_a_pooling_readout_has_no_step_form_and_says_why(tmp_path, capsys):
    run = run_of(tmp_path, **{"task.kind": "classify", "model.readout": "mean", "model.bidirectional": False})
    assert main(["export", str(run), "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "step: not exported: the readout pools every step" in out
    assert (run / "export" / "model.onnx").is_file() and not (run / "export" / "model_step.onnx").exists()


def test_what_cannot_be_exported_is_one_line(tmp_path, capsys):
    run = run_of(tmp_path, **{"task.kind": "seq2seq", "model.hidden": 4})
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "encoder-decoder" in err and "\n" not in err
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert main(["export", str(run), "--steps", "0"]) == 2
