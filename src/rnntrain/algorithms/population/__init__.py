"""Population methods over the weight vector: GA, PSO, annealing, CMA-ES and guessing.

Shared machinery: :mod:`.evaluate` (P networks in one batched, chunked, optionally
process-sharded evaluation) and :mod:`.base` (options, bests, stopping criteria, memetic
BPTT phase, checkpoint state). One file per method.
"""
