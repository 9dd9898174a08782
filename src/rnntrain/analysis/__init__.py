"""Looking inside a recurrent network: gradient flow through time and learned dynamics.

Every analysis is written against a generic single step ``step(h, x) -> h'`` on a flat
state (:mod:`.step`); :func:`model_step` turns any SequenceModel's core into one, through
``Recurrent.step`` (the cells' own single steps), and every Jacobian comes from that step
by ``torch.func``. One concept per file:

- :mod:`.gradient_flow`  ‖∂L/∂h_k‖, σ_max(∂h_T/∂h_k) against the lag, the training monitor
- :mod:`.fixed_points`   fixed and slow points (Sussillo & Barak 2013) and their stability
- :mod:`.lyapunov`       Lyapunov spectrum by the QR method (Benettin et al. 1980)
- :mod:`.behaviour`      point attractor, periodic, quasi-periodic, chaotic
- :mod:`.plots`          the figures;  :mod:`.runs`  the run-directory analyses (the CLI's)

Python::

    from rnntrain.analysis import analyze_gradients, analyze_dynamics
    analyze_gradients("runs/sine-lstm")      # -> RUN_DIR/analysis/gradient_*.png, .csv, .json
    analyze_dynamics("runs/sine-lstm")       # -> RUN_DIR/analysis/dynamics_*.png, .json
"""
from .behaviour import Behaviour, classify_behaviour
from .fixed_points import FixedPoint, classify, find_fixed_points
from .gradient_flow import (GradientFlow, GradientFlowMonitor, fit_rate, gradient_flow,
                            jacobian_product_log_norms, model_gradient_flow)
from .lyapunov import LyapunovSpectrum, largest_lyapunov, lyapunov_spectrum
from .runs import analyze_dynamics, analyze_gradients
from .step import ModelStep, model_step, step_jacobians, trajectory

__all__ = [
    "Behaviour", "classify_behaviour", "FixedPoint", "classify", "find_fixed_points",
    "GradientFlow", "GradientFlowMonitor", "fit_rate", "gradient_flow",
    "jacobian_product_log_norms", "model_gradient_flow", "LyapunovSpectrum",
    "largest_lyapunov", "lyapunov_spectrum", "analyze_dynamics", "analyze_gradients",
    "ModelStep", "model_step", "step_jacobians", "trajectory",
]
