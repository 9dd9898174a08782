"""One writer per run directory: a live writer's lock refuses a second train or resume in one
line; a dead writer's lock is taken over, saying so; default run names never collide."""
import subprocess
import sys

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
