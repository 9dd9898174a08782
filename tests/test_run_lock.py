"""One writer per run directory: a live writer's lock refuses a second train or resume in one
line; a dead writer's lock is taken over, saying so; default run names never collide."""
import subprocess
import sys

import pytest

import rnntrain
from rnntrain.cli.main import main
from rnntrain.cli.train import default_out
from rnntrain.training.run_dir import LOCK


def test_a_live_writers_lock_refuses_a_second_writer_and_a_dead_ones_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "8", "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    assert not (run / LOCK).exists()  # released at the end
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK).write_text(str(live.pid))
        capsys.readouterr()
        for argv in (["train", "--resume", str(run), "--quiet"],
                     ["train", "--hidden", "8", "--epochs", "2", "--out", str(run), "--overwrite", "--quiet"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"another rnntrain (pid {live.pid})" in err and err.count("\n") == 1
        assert (run / "checkpoint.pt").exists() and (run / LOCK).read_text() == str(live.pid)
    finally:
        live.kill()
        live.wait()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # its owner is gone
    assert "which is gone; taking the lock over" in capsys.readouterr().err
    assert not (run / LOCK).exists()


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = rnntrain.load_config()
    first, second, third = default_out(config), default_out(config), default_out(config)
    assert len({first, second, third}) == 3 and all(p.is_dir() for p in (first, second, third))


def test_resume_refuses_data_that_changed_since_the_run_started(tmp_path, capsys):
    data = tmp_path / "s.csv"
    data.write_text("y\n" + "\n".join(str(i % 7) for i in range(120)))
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--hidden", "8", "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    data.write_text("y\n" + "\n".join(str(i % 5) for i in range(120)))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "changed since this run started" in err and err.count("\n") == 1


def test_orphaned_temporary_files_never_block_a_run_and_run_files_are_readable(tmp_path):
    import os
    run = tmp_path / "run"
    assert main(["train", "--hidden", "8", "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    orphan = run / ".checkpoint.pt.k1ll3d.tmp"  # what a kill during a checkpoint write leaves
    orphan.write_bytes(b"half a checkpoint")
    assert main(["train", "--resume", str(run), "--quiet"]) == 0 and not orphan.exists()
    orphan.write_bytes(b"half a checkpoint")
    assert main(["train", "--hidden", "8", "--epochs", "2", "--out", str(run), "--overwrite", "--quiet"]) == 0
    assert not orphan.exists()
    umask = os.umask(0)
    os.umask(umask)
    for name in ("checkpoint.pt", "config.toml", "summary.json", "metrics.csv", "loss.png"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_nothing_is_deleted_without_overwrite_and_links_are_never_followed(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "analysis").mkdir(parents=True)
    (out / "analysis" / "my notes.txt").write_text("mine")
    (out / "summary.json").write_text("{}")  # a run's names, but no checkpoint
    assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "analysis" / "my notes.txt").read_text() == "mine"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (out / "analysis" / "my notes.txt").unlink()
    (out / "analysis").rmdir()
    (out / "analysis").symlink_to(elsewhere, target_is_directory=True)
    assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert (elsewhere / "keep.txt").read_text() == "keep" and not (out / "analysis").exists()


def test_a_run_refused_for_bad_data_leaves_no_default_directory_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("1,2\n3,4\n")  # no header row
    assert main(["train", "--data", "bad.csv", "--quiet"]) == 2
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_an_overwrite_killed_before_the_new_runs_first_checkpoint_leaves_the_old_run(tmp_path, capsys):
    import os
    import signal
    import time
    from rnntrain.training.run_dir import PREVIOUS
    out = tmp_path / "run"
    assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    (out / "analysis").mkdir()
    (out / "analysis" / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # a text run on the built-in corpus: its first round takes seconds, time to kill it in
    new = subprocess.Popen([sys.executable, "-m", "rnntrain", "train", "--task", "text", "--out", str(out),
                            "--overwrite", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / PREVIOUS).exists() and time.time() < deadline and new.poll() is None:
        time.sleep(0.02)
    assert (out / PREVIOUS).is_dir() and not (out / "checkpoint.pt").exists()
    os.kill(new.pid, signal.SIGKILL)
    new.wait()
    assert main(["forecast", str(out)]) == 2  # not a run until it is put back
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(out), "--quiet"]) == 2  # puts it back
    assert "put back the run that --overwrite was replacing" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != LOCK} == before
    assert (out / "analysis" / "notes.txt").read_text() == "mine" and not (out / PREVIOUS).exists()


def test_an_overwrite_killed_while_setting_the_old_run_aside_puts_every_file_back(tmp_path, capsys):
    """The old run's files move aside one by one: a kill between two moves loses none."""
    import os
    import signal
    import rnntrain.training.run_dir as run_dir
    out = tmp_path / "run"
    assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    pid = os.fork()
    if pid == 0:  # the child: --overwrite, killed (SIGKILL) at its third file move
        try:
            original, calls = run_dir.os.replace, [0]

            def replace(*a, **k):
                calls[0] += 1
                if calls[0] == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(*a, **k)
            run_dir.os.replace = replace
            os._exit(main(["train", "--hidden", "8", "--epochs", "1", "--out", str(out), "--overwrite", "--quiet"]))
        finally:
            os._exit(70)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert (out / run_dir.SETTING_ASIDE).is_dir() and len(list((out / run_dir.SETTING_ASIDE).iterdir())) == 2
    assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(out), "--quiet"]) == 2  # puts it back
    assert "put back the run that --overwrite was replacing" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != LOCK} == before
    assert not (out / run_dir.SETTING_ASIDE).exists() and not (out / run_dir.PREVIOUS).exists()


@pytest.mark.slow
def test_every_file_a_run_of_any_task_writes_is_known_so_any_run_can_be_overwritten(tmp_path):
    import fnmatch
    from rnntrain.tasks import TASKS
    from rnntrain.training.run_dir import PREVIOUS, run_patterns
    sizes = {"text": {"task.seq_len": 10, "task.sample_length": 10, "task.text": str(tmp_path / "c.txt")},
             "language": {"task.train_size": 20, "task.eval_size": 10, "task.max_n": 4, "task.test_max_n": 5},
             "stream": {"task.length": 400, "task.switch_every": 100, "task.seq_len": 10},
             "guessing": {"task.length": 10, "task.examples": 20},
             "pathological": {"task.length": 20, "task.epoch_batches": 2, "task.eval_size": 20, "task.eval_batch": 10},
             "forecast": {"task.length": 200}}
    (tmp_path / "c.txt").write_text("the cat sat on the mat. " * 40)
    for kind in TASKS:
        out = tmp_path / kind
        config = rnntrain.load_config(base={"task.kind": kind, **sizes.get(kind, {"task.size": 30}), "model.hidden": 4,
                                            "train.epochs": 1, "monitor.gradient_flow_every": 1,
                                            "model.bidirectional": False})
        rnntrain.train(config, out)
        unknown = [p.name for p in out.iterdir() if not any(fnmatch.fnmatch(p.name, pat) for pat in run_patterns())]
        assert unknown == [], (kind, unknown)
        rnntrain.train(rnntrain.load_config(base={"model.hidden": 4, "train.epochs": 1, "task.length": 200}), out,
                       overwrite=True)
        assert rnntrain.load_run(out).config.task_kind == "forecast" and not (out / PREVIOUS).exists()
