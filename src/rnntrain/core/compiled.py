r"""``Recurrent``'s compiled path: a whole layer's time loop in C++ (``kernels/recurrent.cpp``).

For the small networks people train on CPUs, torch's fused kernels spend most of their time
dispatching each step's matrix product and elementwise ops, not computing
(docs/benchmarks.md). The compiled loop calls BLAS directly on preallocated buffers and
fuses each step's elementwise work into one SIMD pass; around the loop, one matrix product
computes the input part of every step's gates and one the recurrent weights' gradient::

    gx   = x W_ih^T + b_ih (+ b_hh)            (L, N, G*H)   one GEMM
    out, h_n[, c_n] = loop(gx, W_hh, h_0[, c_0], lengths)    one BLAS call and one SIMD pass a step
    dW_hh = sum_t da_t^T h_{t-1}               (G*H, H)      one GEMM in backward (dW_ih, dx too)

where ``da_t`` (N, G*H) is the loss's gradient with respect to step t's recurrent product.
All of it, forward and backward, is one autograd node per layer and direction, written in
C++ (the per-node cost of autograd, and of Python in the backward pass, is a large share of
a small network's step).
The equations are those of :mod:`.cells`; tests/test_compiled.py checks the kernel against
autograd through them (float64, 1e-10).

Building: the first use compiles the extension against the installed torch with
``torch.utils.cpp_extension`` into ``$RNNTRAIN_CACHE`` (default ``~/.cache/rnntrain``),
keyed by the source, torch's version and the CPU's vector capability (about 30 s once;
``make install`` does it). Nothing is built in an isolated environment, so no second torch
is ever downloaded. Without a compiler the fused and step paths run as before, after one
warning line; ``RNNTRAIN_KERNEL=0`` switches the kernel off quietly.

Population evaluation (:func:`population_unroll`) runs the same loop forward only, one
network per thread at a time.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from .lengths import reversal_index, reverse_within

SOURCES = [Path(__file__).with_name("kernels") / name for name in ("recurrent.cpp", "products.cpp", "population.cpp")]
KINDS = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}  # the cells the kernel implements
# Where auto runs compiled, by measurement (benchmarks/bench_kernel.py, 1 and 2 threads): Elman
# and GRU layers whose step has at most AUTO_GATES gate values (batch x gates x hidden): 1.5-3x
# torch's kernel there; above it (256 x 3 x 256) both are GEMM-bound and the two tie (GRU
# 0.86-1.01x over the day's runs), so torch's stays. The LSTM stays torch's at every size:
# its CPU LSTM is oneDNN's fused primitive, already at the GEMM rate (0.8-1.1x).
AUTO = frozenset({"rnn_tanh", "rnn_relu", "gru"})
AUTO_GATES = 1 << 15
DTYPES = (torch.float32, torch.float64)
# torch's own names for the CPU's vector units -> the flags its kernels of that kind are built
# with; at::vec's headers select their implementation by these macros
CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma",
               "-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
}
_UNSET = object()
_module = _UNSET


def cache_dir() -> Path:
    return Path(os.environ.get("RNNTRAIN_CACHE") or Path.home() / ".cache" / "rnntrain")


def _flags() -> list:
    capability = torch.backends.cpu.get_cpu_capability()
    # OpenMP as torch's own build uses it: at::parallel_for's inline loop is an OpenMP region,
    # serial without the flag
    omp = ["-fopenmp"] if "OpenMP" in torch.__config__.parallel_info() else []
    return ["-O3", *omp, *CAPABILITY_FLAGS.get(capability, ["-DCPU_CAPABILITY=DEFAULT"])]


def build(verbose: bool = False):
    """The compiled module: imported from the cache when built before, else compiled now;
    raises when it cannot be.

    Each build runs in a directory of its own process and the finished library is renamed
    into the cache (atomic), so concurrent first uses (test workers, torchrun's processes)
    never wait on a lock that a killed process could leave behind; a later process imports
    the library directly, without ninja."""
    flags = _flags()
    files = sorted(SOURCES[0].parent.glob("*.[ch]*"))  # the sources and the cells.h they include
    key = hashlib.sha256(b"".join(f.read_bytes() for f in files) + " ".join([torch.__version__, *flags]).encode())
    name = f"rnntrain_recurrent_{key.hexdigest()[:12]}"
    root = cache_dir() / "kernels"
    library = root / f"{name}.so"
    if library.exists():
        spec = importlib.util.spec_from_file_location(name, library)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    from torch.utils.cpp_extension import load
    directory = root / f"build-{name}-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    # ninja (a dependency, installed as a script beside this interpreter) must be on PATH
    scripts = sysconfig.get_path("scripts")
    path = os.environ.get("PATH", "")
    if scripts and scripts not in path.split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + path
    module = load(name=name, sources=[str(f) for f in SOURCES], extra_cflags=flags,
                  extra_ldflags=[f for f in flags if f == "-fopenmp"],
                  build_directory=str(directory), verbose=verbose)
    os.replace(directory / f"{name}.so", library)
    shutil.rmtree(directory, ignore_errors=True)
    return module


def kernel():
    """The compiled module, built on first call; None (after one warning) where it cannot be
    built or is switched off (``RNNTRAIN_KERNEL=0``)."""
    global _module
    if _module is _UNSET:
        if os.environ.get("RNNTRAIN_KERNEL", "1") in ("0", "off", "false", "no"):
            _module = None
            return None
        try:
            _module = build()
        except Exception as exc:  # no compiler, no BLAS symbols, a read-only cache...
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
            warnings.warn(f"rnntrain: the compiled recurrent kernel could not be built ({reason}); "
                          f"using torch's kernels (set RNNTRAIN_KERNEL=0 to skip the attempt)",
                          RuntimeWarning, stacklevel=2)
            _module = None
    return _module


def supports(rnn, x: Tensor) -> bool:
    """Whether this module and input can run compiled: a cell the kernel implements (no
    projection), a CPU tensor of float32/float64, and a kernel that built."""
    return (rnn.cell.name in KINDS and not rnn.proj_size and x.device.type == "cpu"
            and x.dtype in DTYPES and kernel() is not None)


def preferred(rnn, x: Tensor) -> bool:
    """Whether ``path="auto"`` runs compiled: where it supports the module and input x
    (L, N, H_in), for the cells and sizes it was measured faster for (:data:`AUTO`)."""
    batch = x.shape[1] if x.dim() == 3 else 1
    return (rnn.cell.name in AUTO and batch * rnn.cell.gates * rnn.hidden_size <= AUTO_GATES
            and supports(rnn, x))


def choose(rnn, path: str, x: Tensor) -> str:
    """"auto" or "compiled" -> the kernel that runs: "compiled" or torch's "fused" (auto where
    not :func:`preferred`; compiled where the kernel did not build, after its warning).
    Raises ValueError for an explicit "compiled" on a module or input it does not run."""
    if path == "auto":
        return "compiled" if preferred(rnn, x) else "fused"
    if supports(rnn, x):
        return "compiled"
    if kernel() is None:
        return "fused"
    raise ValueError(f"path='compiled' runs {', '.join(KINDS)} cells without a projection on "
                     f"CPU float32/float64 tensors; use path='auto'")


def population_supported(rnn, weights, seq: Tensor) -> bool:
    """Whether :func:`population_unroll` runs P networks shaped like ``rnn``: a cell the
    kernel implements, no projection or zoneout, CPU float32/float64, and nothing asking for
    gradients (the kernel is forward only)."""
    grads = torch.is_grad_enabled() and any(w.requires_grad for w in weights.values())
    return (rnn.cell.name in KINDS and not rnn.proj_size and not rnn.noise.zoneout and not grads
            and seq.device.type == "cpu" and seq.dtype in DTYPES and kernel() is not None)


def population_unroll(rnn, weights, seq: Tensor, lengths: Optional[Tensor], final_only: bool,
                      layers: Sequence[int], direction: int = 0) -> Tensor:
    """:func:`.population.population_unroll` by the compiled loop, through ``layers`` of one
    direction: ``weights`` {name: (P, *shape)}, seq (L, N, F) shared or (L, P, N, F) ->
    (P, N, L or 1, H)."""
    kind = KINDS[rnn.cell.name]
    x = seq[None] if seq.dim() == 3 else seq.permute(1, 0, 2, 3)  # (1 or P, L, N, F)
    for layer in layers:
        w_ih, w_hh, b_ih, b_hh = [None if n is None else weights[n].contiguous()
                                  for n in rnn.weight_slots(layer, direction)[:4]]
        last = final_only and layer == layers[-1]
        x = kernel().population(kind, x.contiguous(), w_ih, b_ih, b_hh, w_hh, lengths, last)
    # final states come units first, (P, 1, H, N): a linear readout's product W h^T reads them
    # in place (a (P, H, N) view of (P, N, H) rows took 1.4-2.8x as long at P = 50, N = 780)
    return x.permute(0, 3, 1, 2) if final_only else x.permute(0, 2, 1, 3)  # (P, N, L or 1, H)


# The cells whose online products the kernel computes: (kind, W_hh diagonal). The locally
# recurrent cell (CRBP's) is an Elman step that reads only W_hh's diagonal: the Elman kernel
# with diag(diagonal(W_hh)) as the recurrent matrix computes its step and D tan exactly, and
# `diagonal` keeps W_hh's off-diagonal gradient at zero, as autograd through diagonal() does
PRODUCTS = {**{name: (kind, False) for name, kind in KINDS.items()}, "local": (KINDS["rnn_tanh"], True)}


def products_supported(rnn, s: Tensor) -> bool:
    """Whether :func:`step_products` runs one step of ``rnn``: a cell the kernel implements,
    unidirectional, no projection or zoneout, a CPU float32/float64 state, a kernel that built."""
    return (rnn.cell.name in PRODUCTS and not rnn.proj_size and not rnn.noise.zoneout
            and not rnn.bidirectional and s.device.type == "cpu" and s.dtype in DTYPES
            and kernel() is not None)


def step_products(rnn, weights: Dict[str, Tensor], offsets: Dict[str, int], P: int, s: Tensor,
                  x: Tensor, cot: Tensor, tan: Tensor, out: Optional[Tensor] = None):
    """One step of every layer of ``rnn`` and its Jacobian products, by ``kernels/products.cpp``:
    ``weights`` {name: tensor}, ``offsets`` {name: where it starts in the flat (P,) vector},
    s (N, S) flat (:meth:`Recurrent.flat_state`), x (N, F), cot and tan (N, K, S) ->
    (s' (N, S), cot I (N, K, P), written into ``out`` when given, D tan (N, K, S))."""
    kind, diagonal = PRODUCTS[rnn.cell.name]
    slots = [n for layer in range(rnn.num_layers) for n in rnn.weight_slots(layer)[:4]]
    tensors = [None if n is None else weights[n] for n in slots]
    if diagonal:  # every layer's W_hh (slot 1 of 4) as the matrix the step multiplies by
        tensors[1::4] = [torch.diag_embed(torch.diagonal(w)) for w in tensors[1::4]]
    return kernel().products(kind, tensors, [-1 if n is None else offsets[n] for n in slots], P, s, x,
                             cot, tan, diagonal, out)


def forward_compiled(rnn, x: Tensor, hx, n: Optional[Tensor], weights):
    """x (L, N, H_in) with lengths n (None: all full) through every layer and direction of
    ``rnn`` by the compiled loop; the backward direction reads each sequence reversed within
    its length (as the fused ragged path). Returns (output (L, N, D*H), final state)."""
    kind = KINDS[rnn.cell.name]
    rev = reversal_index(n, x.shape[0], x.device) if rnn.bidirectional and n is not None else None

    def flip(t: Tensor) -> Tensor:
        return t.flip(0) if n is None else reverse_within(t, n, rev)

    def run(x, state0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = weights[rnn.index(layer, direction)][:4]
        c0 = state0[1] if len(state0) == 2 else None
        out, hn, cn = kernel().layer(kind, n, flip(x) if direction == 1 else x, w_ih, b_ih, b_hh,
                                     w_hh, state0[0], c0)
        return (flip(out) if direction == 1 else out), ((hn,) if c0 is None else (hn, cn))

    return rnn.layers_through(x, hx, run)


def main() -> None:
    """Build now (``make install`` does), so that the first training run does not wait."""
    try:
        build(verbose="-v" in sys.argv)
        print(f"rnntrain: compiled recurrent kernel ready in {cache_dir() / 'kernels'}")
    except Exception as exc:
        print(f"rnntrain: the compiled kernel could not be built: {exc}", file=sys.stderr)
        sys.exit(0)  # not an install failure: the fused and step paths still run


if __name__ == "__main__":
    main()
