"""Run by test_distributed: BPTT on every task kind, in one process or under torchrun.

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_kinds.py OUT.pt TEXT_FILE

Trains each kind for two epochs in float64 (class weights where a task has them, ragged
batches where it has lengths, an odd batch size) and saves rank 0's weights and losses.
"""
import os
import sys

import torch
import torch.distributed

import rnntrain

from test_every_pair import TASK_SIZES

EXTRA = {"classify": {"task.class_weights": "balanced"}, "tag": {"task.class_weights": "balanced"}}


def main(out: str, text: str) -> None:
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # one group for every run (the trainer uses a group it finds, and leaves it)
        torch.distributed.init_process_group("gloo")
    results = {}
    for kind, sizes in TASK_SIZES.items():
        keys = {"task.kind": kind, **sizes, **EXTRA.get(kind, {}), "dtype": "float64", "model.hidden": 5,
                "train.batch_size": 7, "train.epochs": 2, **({"task.text": text} if kind == "text" else {})}
        result = rnntrain.train(rnntrain.load_config(base=keys))
        results[kind] = {"weights": result.model.state_dict(), "losses": [r["train_loss"] for r in result.history]}
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save(results, out)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
