"""Run by test_distributed under torchrun (or alone): data-parallel BPTT.

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_bptt.py OUT_DIR CASE [crash:K | resume]

Trains the config of CASE into OUT_DIR; ``crash:K`` kills rank 0 with SIGKILL once round K
is checkpointed (torchrun then stops the other process), ``resume`` continues OUT_DIR.
"""
import os
import signal
import sys

import torch

import rnntrain

# no figures: these runs compare weights and metrics, and rank 0's figures under torchrun
# are test_population's and test_hessian_free_trains_under_torchrun's to draw
CASES = {
    # the default forecaster, float64, a batch that leaves a last batch of odd size
    "forecast": {"dtype": "float64", "model.hidden": 6, "train.batch_size": 25, "train.epochs": 3,
                 "train.figures": False},
    # ragged labelled sequences with class weights: shards of unequal loss weight
    "classify": {"dtype": "float64", "task.kind": "classify", "task.class_weights": "balanced",
                 "model.hidden": 5, "train.batch_size": 9, "train.epochs": 2, "train.figures": False},
    # noise of its own in every process (dropout), truncated BPTT over streams of text
    "noisy": {"task.kind": "text", "model.cell": "lstm", "model.hidden": 8, "model.layers": 2,
              "model.dropout": 0.3, "algorithm.truncation": 5, "train.batch_size": 6,
              "train.epochs": 3, "train.checkpoint_every": 0, "train.figures": False},
}


def main(out: str, case: str, mode: str = "run") -> None:
    torch.set_num_threads(1)
    if mode == "resume":
        rnntrain.resume(out)
        return
    config = rnntrain.load_config(base={**CASES[case], **({"task.text": os.environ["TEXT"]} if case == "noisy" else {})})
    callbacks = []
    if mode.startswith("crash:"):
        k = int(mode.split(":")[1])

        def die(round_, row):
            if round_ == k and int(os.environ.get("RANK", "0")) == 0:
                os.kill(os.getpid(), signal.SIGKILL)
        callbacks.append(die)
    rnntrain.train(config, out, callbacks=callbacks)


if __name__ == "__main__":
    main(*sys.argv[1:])
