"""Data-parallel BPTT on torchrun: two processes end where one does, and resume exactly."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rnntrain
from rnntrain.parallel import Distributed
from rnntrain.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow(20)  # torchrun's processes: every test here is long

SCRIPT = Path(__file__).with_name("dist_bptt.py")
TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 12


def launch(tmp_path, out, case, *mode, processes=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEXT": str(tmp_path / "text.txt")}
    (tmp_path / "text.txt").write_text(TEXT)
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    return subprocess.run([*head, str(SCRIPT), str(out), case, *mode], env=env, capture_output=True, text=True,
                          timeout=600)


def weights(run):
    return load_checkpoint(Path(run) / "checkpoint.pt")["model"]


@pytest.mark.parametrize("case", ["forecast"])  # every task kind: test_every_task_kind_...
def test_two_processes_end_with_the_weights_of_one_on_the_same_global_batches(tmp_path, case):
    for name, processes in (("one", 1), ("two", 2)):
        done = launch(tmp_path, tmp_path / name, case, processes=processes)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert next(iter(one.values())).dtype == torch.float64
    for k in one:
        assert torch.allclose(one[k], two[k], rtol=0, atol=1e-10), k
    # the metrics are the whole batch's, reduced over processes
    rows = lambda run: [l.split(",")[1] for l in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert [float(a) for a in rows(tmp_path / "one")] == pytest.approx([float(b) for b in rows(tmp_path / "two")],
                                                                       rel=1e-9)


def test_a_killed_two_process_run_resumes_exactly(tmp_path):
    """Dropout draws its own masks in each process; each process's RNG state is in the
    checkpoint, so the resumed run draws what the uninterrupted one drew."""
    done = launch(tmp_path, tmp_path / "whole", "noisy")
    assert done.returncode == 0, done.stderr[-3000:]
    crashed = launch(tmp_path, tmp_path / "cut", "noisy", "crash:2")
    assert crashed.returncode != 0
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert state["round"] == 2 and len(state["rng"]["ranks"]) == 2
    assert not torch.equal(state["rng"]["ranks"][0]["torch"], state["rng"]["ranks"][1]["torch"])
    resumed = launch(tmp_path, tmp_path / "cut", "noisy", "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole, cut = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    assert (tmp_path / "whole" / "metrics.csv").read_text() .splitlines()[1:] != []
    read = lambda run: [l.rsplit(",", 2)[0] for l in (run / "metrics.csv").read_text().splitlines()]
    assert read(tmp_path / "whole") == read(tmp_path / "cut")  # all but the time and work columns
    # a two-process run is not resumed by one process
    with pytest.raises(rnntrain.UserError, match="--nproc_per_node 2"):
        rnntrain.resume(tmp_path / "cut")


def test_hessian_free_trains_under_torchrun(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "rnntrain", "train", "--algorithm", "hf", "--hidden", "4", "--epochs", "1",
                           "--set", "task.length=200", "--set", "algorithm.cg_max_iters=10",
                           "--out", str(tmp_path / "run"), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "summary.json").is_file()


def test_families_that_train_in_one_process_refuse_torchrun(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "rnntrain", "train", "--algorithm", "uoro", "--hidden", "4",
                           "--out", str(tmp_path / "run"), "--quiet"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "uoro trains in one process; run it without torchrun" in done.stderr
    assert "Traceback" not in done.stderr.split("uoro trains in one process")[0][-400:]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_rows_are_shared_out_contiguously_and_all_of_them():
    for n in (1, 5, 9, 32):
        parts = [Distributed(rank, 3).shard(n) for rank in range(3)]
        assert torch.equal(torch.cat(parts), torch.arange(n))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert torch.equal(Distributed().shard(4), torch.arange(4))


def test_every_task_kind_trains_data_parallel_as_in_one_process(tmp_path):
    """Each task's loss_weight makes the shards' weighted losses the whole batch's: two
    processes end with one process's weights on every kind (ragged, class-weighted, CTC,
    encoder-decoder, streams) by BPTT; Hessian-free's gradient, Gauss-Newton product (with
    structural damping) and loss equal one process's (dist_kinds.py says why not its run)."""
    script = Path(__file__).with_name("dist_kinds.py")
    (tmp_path / "text.txt").write_text(TEXT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    for name, head in (("one", [sys.executable]),
                       ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])):
        done = subprocess.run([*head, str(script), str(tmp_path / f"{name}.pt"), str(tmp_path / "text.txt")],
                              env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert set(one) == set(two)
    for run in one:
        if isinstance(one[run], str):  # refused alike (HF and CTC)
            assert one[run] == two[run] and run == ("hf", "transcribe"), run
        elif run[0] == "bptt":
            assert one[run]["losses"] == pytest.approx(two[run]["losses"], rel=1e-10), run
            for k, w in one[run]["weights"].items():
                assert torch.allclose(w, two[run]["weights"][k], rtol=0, atol=1e-10), (run, k)
        else:  # Hessian-free's gradient, Gauss-Newton product and loss: summed over processes
            for k, value in one[run].items():
                assert torch.allclose(torch.as_tensor(value), torch.as_tensor(two[run][k]), rtol=1e-12,
                                      atol=1e-14), (run, k)
