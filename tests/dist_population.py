"""Run by test_population under torchrun: a GA run whose evaluation is sharded across processes.

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_population.py OUT.pt
"""
import os
import sys

import torch

import rnntrain


def main(out: str) -> None:
    torch.set_num_threads(1)
    config = rnntrain.load_config(base={"task.length": 200, "task.window": 8, "model.hidden": 6,
                                        "algorithm.name": "ga", "algorithm.population": 9,
                                        "train.epochs": 4})
    result = rnntrain.train(config)  # joins the gloo group torchrun set up, and ends it cleanly
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if rank == 0:
        torch.save({"weights": result.model.state_dict(),
                    "losses": [r["train_loss"] for r in result.history], "world": world}, out)

if __name__ == "__main__":
    main(sys.argv[1])
