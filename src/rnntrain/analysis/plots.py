"""Figures of the analyses (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

KIND_COLORS = {"stable": "tab:green", "saddle": "tab:orange", "unstable": "tab:red",
               "marginal": "tab:purple"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_gradient_curves(path: Path, log10_sigma: Tensor, grad_norms: Optional[Tensor],
                         rate: float, title: str = "") -> Path:
    """Left: log10 σ_max(∂h_T/∂h_{T-lag}) against the lag with the fitted rate.
    Right: ‖∂L/∂h_k‖ against the step k."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    lags = torch.arange(log10_sigma.numel())
    ax = axes[0]
    ax.plot(lags, log10_sigma, lw=1.5, label="mean over the batch")
    if log10_sigma.numel() > 1:
        a = float(log10_sigma[1:].mean() - math.log10(rate) * lags[1:].double().mean())
        ax.plot(lags, a + lags * math.log10(rate), "k--", lw=1, label=f"fit: {rate:.4g} per step")
    ax.set_xlabel("lag T - k (steps)")
    ax.set_ylabel("log10 σ_max(∂h_T/∂h_k)")
    ax.set_title("Jacobian products")
    ax.legend(fontsize=8)
    ax = axes[1]
    if grad_norms is not None:
        ax.semilogy(torch.arange(grad_norms.numel()), grad_norms.clamp(min=1e-30), lw=1.5)
    ax.set_xlabel("step k")
    ax.set_ylabel("‖∂L/∂h_k‖")
    ax.set_title("how much the loss hears from step k")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_gradient_heatmap(path: Path, rounds: Sequence[int], matrix: Tensor, unit: str = "round",
                          title: str = "") -> Path:
    """log10 σ_max(∂h_T/∂h_{T-lag}) as an image: rounds down, lags across."""
    fig, ax = plt.subplots(figsize=(8, 4))
    img = ax.imshow(matrix.numpy(), aspect="auto", origin="lower", cmap="viridis",
                    extent=(-0.5, matrix.shape[1] - 0.5, -0.5, len(rounds) - 0.5),
                    interpolation="nearest")
    ticks = list(range(0, len(rounds), max(1, len(rounds) // 8)))
    ax.set_yticks(ticks, [str(rounds[i]) for i in ticks])
    ax.set_xlabel("lag T - k (steps)")
    ax.set_ylabel(unit)
    fig.colorbar(img, ax=ax, label="log10 σ_max(∂h_T/∂h_k)")
    ax.set_title(title or f"gradient flow during training ({unit} × lag)")
    return _save(fig, path)


def pca(states: Tensor, k: int = 2):
    """(mean (D,), components (k, D)) of states (M, D) by SVD."""
    mean = states.mean(0)
    _, _, V = torch.linalg.svd((states - mean).double(), full_matrices=False)
    comps = V[:k]
    if comps.shape[0] < k:  # fewer directions than asked: pad with zeros
        comps = torch.cat([comps, comps.new_zeros(k - comps.shape[0], comps.shape[1])])
    return mean.double(), comps


def plot_trajectories(path: Path, trajectories: Tensor, points: List, title: str = "") -> Path:
    """Trajectories (B, T, D) on their first two principal components; fixed points marked
    by kind (filled: fixed, hollow: slow point)."""
    B, T, D = trajectories.shape
    mean, comps = pca(trajectories.reshape(-1, D), 2)
    proj = (trajectories.double() - mean) @ comps.T  # (B, T, 2)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for b in range(B):
        ax.plot(proj[b, :, 0], proj[b, :, 1], lw=0.8, alpha=0.7)
        ax.plot(proj[b, 0, 0], proj[b, 0, 1], ".", color="gray", ms=4)
    seen = set()
    for p in points:
        xy = (p.state.double() - mean) @ comps.T
        color = KIND_COLORS.get(p.kind, "k")
        label = f"{p.kind}{'' if p.fixed else ' (slow)'}"
        ax.plot(xy[0], xy[1], "o", ms=9, mec="k", mfc=color if p.fixed else "none",
                label=None if label in seen else label)
        seen.add(label)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title or "trajectories and fixed points")
    if seen:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_eigenvalues(path: Path, points: List, max_points: int = 6) -> Path:
    """Eigenvalues of each fixed point's Jacobian against the unit circle."""
    fig, ax = plt.subplots(figsize=(5, 5))
    t = torch.linspace(0, 2 * math.pi, 200)
    ax.plot(torch.cos(t), torch.sin(t), "k-", lw=0.8)
    for i, p in enumerate(points[:max_points]):
        ev = p.eigenvalues
        ax.plot(ev.real, ev.imag, "o", ms=4, alpha=0.7,
                label=f"#{i} {p.kind}{'' if p.fixed else ' (slow)'}")
    ax.set_aspect("equal")
    ax.axhline(0, color="gray", lw=0.4)
    ax.axvline(0, color="gray", lw=0.4)
    ax.set_xlabel("Re μ")
    ax.set_ylabel("Im μ")
    ax.set_title("Jacobian eigenvalues at the fixed points")
    if points:
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_lyapunov(path: Path, exponents: Tensor, running_max: Tensor) -> Path:
    """Left: the spectrum (descending). Right: the running estimate of the largest exponent."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(torch.arange(1, exponents.numel() + 1), exponents, ".-", lw=1)
    axes[0].axhline(0, color="k", lw=0.6)
    axes[0].set_xlabel("index i")
    axes[0].set_ylabel("λ_i (per step)")
    axes[0].set_title("Lyapunov spectrum")
    axes[1].plot(torch.arange(1, running_max.numel() + 1), running_max, lw=1)
    axes[1].axhline(0, color="k", lw=0.6)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("steps")
    axes[1].set_ylabel("estimate of λ_1")
    axes[1].set_title(f"convergence: λ_1 = {float(exponents[0]):.4g}")
    return _save(fig, path)
