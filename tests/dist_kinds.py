"""Run by test_distributed, in one process or under torchrun, on every task kind:

- BPTT trained for two epochs (float64, class weights where a task has them, ragged batches
  where it has lengths, an odd batch size): the weights and losses;
- Hessian-free's pieces on its first minibatch: the gradient, a Gauss-Newton product with
  structural damping and the loss at another point (a whole HF run amplifies the rounding of
  sums taken in another order through hundreds of CG iterations and its discrete damping and
  backtracking decisions, so the pieces, not the trajectory, are what must agree).

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_kinds.py OUT.pt TEXT_FILE
"""
import os
import sys

import torch
import torch.distributed

import rnntrain
from rnntrain.algorithms.curvature import Curvatures
from rnntrain.training.trainer import Trainer

from test_every_pair import TASK_SIZES

EXTRA = {"classify": {"task.class_weights": "balanced"}, "tag": {"task.class_weights": "balanced"}}


def config(kind, algorithm, text):
    return rnntrain.load_config(base={
        "task.kind": kind, **TASK_SIZES[kind], **EXTRA.get(kind, {}), "dtype": "float64", "model.hidden": 5,
        "train.batch_size": 7, "train.epochs": 2, "algorithm.name": algorithm,
        **({"task.text": text} if kind == "text" else {})})


def hf_pieces(cfg):
    trainer = Trainer(cfg)
    hf = trainer.algorithm
    chunks = next(iter(hf._minibatches()))
    loss, g = hf._gradient(chunks)
    curv = Curvatures(trainer.model, trainer.task.loss, chunks, structural=0.3, dist=trainer.dist,
                       task=trainer.task)
    v = torch.randn(g.shape, generator=torch.Generator().manual_seed(1), dtype=g.dtype)
    return {"loss": loss, "g": g, "gv": curv.product(v), "moved": hf._loss_at(curv.theta + 0.01 * v, chunks)}


def main(out: str, text: str) -> None:
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # one group for every run (the trainer uses a group it finds, and leaves it)
        torch.distributed.init_process_group("gloo")
    results = {}
    for kind in TASK_SIZES:
        result = rnntrain.train(config(kind, "bptt", text))
        results["bptt", kind] = {"weights": result.model.state_dict(),
                                 "losses": [r["train_loss"] for r in result.history]}
        try:
            results["hf", kind] = hf_pieces(config(kind, "hf", text))
        except rnntrain.UserError as e:  # the same refusal in every process
            results["hf", kind] = str(e)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save(results, out)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
