"""A trained network out of Python: ``rnntrain export RUN_DIR --format onnx|torchscript``.

Two forms of the run's model (encoder -> recurrent core -> readout, in evaluation mode):

- **sequence**: ``x (N, L, F)`` (token ids ``(N, L)``) -> the model's outputs, ``(N, O)`` for a
  sequence label or ``(N, L, O)`` per step. The batch is dynamic; the length L is fixed at
  export (``--steps``, default the run's own sequence length), as the time loop is unrolled
  from the cells' own steps (one definition of each cell, no exporter-specific kernel).
  Every cell and both directions.
- **step** (streaming): ``x (N, F)`` and the state ``h`` (and ``c`` for LSTM-like cells), each
  ``(layers, N, H)`` -> ``y (N, O)`` and the next state: the output as if the sequence ended at
  this step. Sequences of any length, one step at a time. Forward-only cores whose readout
  reads a step's state (``last`` or per step); a bidirectional core, or a readout pooling every
  step (mean, attention), has no step form.

Both take what the network takes: the task's scaling of the data (a forecaster's scaler, a
vocabulary) is not part of the graph; ``export.json`` names the inputs, outputs and shapes.
Every file is checked before it is reported: onnxruntime (ONNX) or ``torch.jit.load``
(TorchScript) runs it on the run's own data and its outputs must equal rnntrain's to 1e-5.

ONNX goes through torch's own exporter (``torch.onnx.export``; checking needs onnxruntime:
``pip install rnntrain[export]``), TorchScript through ``torch.jit.trace``.
"""
from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .errors import UserError

FORMATS = ("onnx", "torchscript")
FORMS = ("sequence", "step")
TOLERANCE = 1e-5  # largest |difference| accepted between the exported file and rnntrain (relative to 1 + |y|)


class SequenceGraph(nn.Module):
    """The model over whole sequences of one length, from the zero state: x -> y."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x, None, final_state=False)[0]


class StepGraph(nn.Module):
    """One step: (x_t, *state) -> (y_t, *state'), the model run over a sequence of length 1
    from ``state``. ``y_t`` is the output as if the sequence ended at this step."""

    def __init__(self, model: nn.Module, per_step: bool) -> None:
        super().__init__()
        self.model, self.per_step = model, per_step

    def forward(self, x: Tensor, *state: Tensor):
        y, new = self.model(x[:, None], state[0] if len(state) == 1 else tuple(state))
        y = y[:, 0] if self.per_step else y
        return (y, *(new if isinstance(new, tuple) else (new,)))


@dataclass
class Exported:
    """What ``export`` wrote: files by form, and the largest difference it measured."""

    files: Dict[str, Path]
    errors: Dict[str, float]
    skipped: Dict[str, str] = field(default_factory=dict)  # form -> why it has no file
    meta: Optional[Path] = None


def _example(loaded, steps: Optional[int]) -> Tensor:
    """Inputs to export and check with: the run's validation (else training) sequences, cut to
    the steps they all have; random inputs of the run's shape when its data is gone."""
    from .analysis.runs import data_task
    task = data_task(loaded)
    batch = None
    for split in ("val", "train"):
        try:
            batch = next(iter(task.batches(split, 16)), None)
        except (UserError, StopIteration, KeyError, AttributeError):
            batch = None
        if batch is not None:
            break
    if batch is not None:
        x = batch.inputs
        shortest = x.shape[1] if batch.lengths is None else int(batch.lengths.min())
        L = steps or shortest
        if L <= shortest:
            return x[:, :L].cpu()
    spec, L = loaded.task.spec, steps or 20
    if spec.tokens:
        return torch.randint(0, spec.input_size, (8, L))
    dtype = next(loaded.model.parameters()).dtype
    return torch.randn(8, L, spec.input_size, dtype=dtype, generator=torch.Generator().manual_seed(0))


def _why_no_step(model) -> Optional[str]:
    core = model.core("export")
    if core.bidirectional:
        return "a bidirectional core reads each sequence backwards too, so it has no step form"
    if model.reads_all_steps and not model.per_step:
        return "the readout pools every step (mean, attention), so a step's output needs the whole sequence"
    return None


def _state_names(core) -> List[str]:
    k = len(core.state_sizes)
    return ["h", "c"][:k] if k <= 2 else [f"s{i}" for i in range(k)]


@contextmanager
def _quiet():
    """The exporters' progress lines and deprecation notes: not the user's business."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    logging.getLogger("onnxscript").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _save(graph: nn.Module, args: Tuple[Tensor, ...], names: Tuple[List[str], List[str]],
          path: Path, fmt: str) -> None:
    """``graph`` traced on ``args`` into ``path``; the batch axis stays free (axis 0 of the
    inputs, axis 1 of a state (layers, N, H))."""
    try:
        _trace(graph, args, names, path, fmt)
    except UserError:
        raise
    except Exception as e:  # an exporter's failure is ours, not the user's: one line to report
        last = next((l for l in reversed(str(e).splitlines()) if l.strip()), type(e).__name__)
        raise UserError(f"{fmt} export failed ({type(e).__name__}: {last.strip()[:200]}); please report "
                        f"it with the run's config.toml, or try --format "
                        f"{'torchscript' if fmt == 'onnx' else 'onnx'}") from None


def _trace(graph: nn.Module, args: Tuple[Tensor, ...], names: Tuple[List[str], List[str]],
           path: Path, fmt: str) -> None:
    if fmt == "torchscript":
        torch.jit.trace(graph, args, check_trace=False).save(str(path))
        return
    # torch's TorchScript-based exporter: 0.5 s where the dynamo exporter takes 2-6 s for the
    # same graph (measured on a 2-layer LSTM unrolled 6 steps), and identical outputs here;
    # the dynamo exporter is used where a torch release no longer has the older one
    axes = {n: {0 if n == "x" else 1: "batch"} for n in names[0]}
    axes.update({n: {0 if n == "y" else 1: "batch"} for n in names[1]})
    try:
        torch.onnx.export(graph, args, str(path), input_names=names[0], output_names=names[1],
                          dynamo=False, dynamic_axes=axes, opset_version=17)
        return
    except TypeError:  # no dynamo= / TorchScript exporter in this torch
        pass
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs the onnxscript package: pip install 'rnntrain[export]'") from None
    batch = torch.export.Dim("batch", min=1)
    # (x, *state): the step's state arrives as StepGraph.forward's one varargs tuple
    shapes = ({0: batch},) if len(args) == 1 else ({0: batch}, tuple({1: batch} for _ in args[1:]))
    program = torch.onnx.export(graph, args, input_names=names[0], output_names=names[1],
                                dynamo=True, dynamic_shapes=shapes, verbose=False, optimize=True)
    program.save(str(path))


def runner(path: Path, fmt: str, names: List[str]):
    """The exported file, loaded by its own runtime: a function of the inputs ``names``
    (tensors) -> its outputs (tensors)."""
    if fmt == "torchscript":
        module = torch.jit.load(str(path))

        def run_ts(*args: Tensor) -> List[Tensor]:
            out = module(*args)
            return [o.detach() for o in (out if isinstance(out, tuple) else (out,))]
        return run_ts
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("checking the ONNX file needs onnxruntime: pip install 'rnntrain[export]'") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run_onnx(*args: Tensor) -> List[Tensor]:
        return [torch.from_numpy(o) for o in session.run(None, {n: a.numpy() for n, a in zip(names, args)})]
    return run_onnx


def _error(got: Tensor, want: Tensor) -> float:
    want = want.detach().to(got.dtype)
    return float(((got - want).abs() / (1 + want.abs())).max()) if want.numel() else 0.0


def export(run_dir: Union[str, Path], out_dir: Union[str, Path, None] = None, *, fmt: str = "onnx",
           forms: Tuple[str, ...] = FORMS, steps: Optional[int] = None) -> Exported:
    """Export the model of ``run_dir`` in each of ``forms`` to ``out_dir`` (default
    RUN_DIR/export) and check each file against rnntrain's outputs (module docstring)."""
    from .training.loaded import load_run
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}': choose {' or '.join(FORMATS)} (--format)")
    loaded = load_run(run_dir)
    model = loaded.model.cpu().eval()
    if len(model.cores()) != 1:
        raise UserError("export takes a model with one recurrent core; an encoder-decoder is decoded by "
                        "`rnntrain predict`/`translate` (its beam search is not a fixed graph)")
    core = model.core("export")
    core.path = "step"  # the cells' own steps: the one definition every exporter can read
    out = Path(out_dir) if out_dir is not None else loaded.path / "export"
    out.mkdir(parents=True, exist_ok=True)
    x = _example(loaded, steps)
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    result = Exported({}, {})
    meta: Dict[str, Any] = {"format": fmt, "run": str(loaded.path), "tolerance": TOLERANCE,
                            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
                            "tokens": bool(loaded.task.spec.tokens), "forms": {}}
    with _quiet():
        with torch.no_grad():
            want = model(x, None, final_state=False)[0]
            for form in forms:
                if form == "step" and _why_no_step(model):
                    result.skipped[form] = _why_no_step(model)
                    continue
                path = out / f"model{'' if form == 'sequence' else '_step'}{suffix}"
                if form == "sequence":
                    graph, args, names = SequenceGraph(model), (x,), (["x"], ["y"])
                    _save(graph, args, names, path, fmt)
                    error = _error(runner(path, fmt, names[0])(*args)[0], want)
                    shapes = {"x": ["batch", *x.shape[1:]], "y": ["batch", *want.shape[1:]]}
                else:
                    graph = StepGraph(model, model.per_step)
                    state = _zero_state(core, x.shape[0], next(model.parameters()).dtype)
                    sn = _state_names(core)
                    names = (["x", *sn], ["y", *[n + "_next" for n in sn]])
                    _save(graph, (x[:, 0], *state), names, path, fmt)
                    error = _check_steps(path, fmt, names[0], x, state, want, model.per_step)
                    shapes = {"x": ["batch", *x.shape[2:]], **{n: [s.shape[0], "batch", s.shape[2]]
                                                              for n, s in zip(sn, state)},
                              "y": ["batch", *want.shape[(2 if model.per_step else 1):]]}
                if not error <= TOLERANCE:
                    raise UserError(f"the exported {form} form differs from rnntrain's outputs by {error:.3g} "
                                    f"(more than {TOLERANCE:g}): please report this with the run's config.toml")
                result.files[form], result.errors[form] = path, error
                meta["forms"][form] = {"file": path.name, "inputs": names[0], "outputs": names[1],
                                       "shapes": shapes, "max_error": error}
    meta["skipped"] = result.skipped
    meta["steps"] = int(x.shape[1])
    result.meta = out / "export.json"
    result.meta.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return result


def _zero_state(core, batch: int, dtype) -> List[Tensor]:
    """The core's zero state as separate (layers, N, width) tensors."""
    state = core.initial_state(batch, dtype=dtype)
    return list(state) if isinstance(state, tuple) else [state]


def _check_steps(path: Path, fmt: str, names: List[str], x: Tensor, state: List[Tensor], want: Tensor,
                 per_step: bool) -> float:
    """Runs the exported step over every step of ``x``, carrying its state; the outputs must be
    the whole-sequence outputs (per step), or the label at the last step."""
    error, run = 0.0, runner(path, fmt, names)
    for t in range(x.shape[1]):
        y, *state = run(x[:, t], *state)
        if per_step:
            error = max(error, _error(y, want[:, t]))
    return error if per_step else _error(y, want)
