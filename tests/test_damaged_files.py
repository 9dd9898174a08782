"""Files that are not what they claim: every command that reads a run answers a damaged,
foreign or malicious checkpoint, or a config.toml edited to no longer fit it, with one line
and exit status 2, runs nothing from the file, and changes nothing in the run directory."""
import os

import pytest
import torch

from rnntrain.cli.main import main


class Payload:
    """A pickle that would run code when loaded unsafely."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


DAMAGES = {
    "zero-length": lambda run: (run / "checkpoint.pt").write_bytes(b""),
    "truncated": lambda run: (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:200]),
    "random bytes": lambda run: (run / "checkpoint.pt").write_bytes(os.urandom(4096)),
    "a torch file with other keys": lambda run: torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt"),
    "a pickle that runs code": lambda run: torch.save(Payload(), run / "checkpoint.pt"),
    "config.toml edited to another size": lambda run: (run / "config.toml").write_text(
        (run / "config.toml").read_text().replace("hidden = 8", "hidden = 9")),
    "checkpoint.pt missing": lambda run: (run / "checkpoint.pt").unlink(),
    "config.toml missing": lambda run: (run / "config.toml").unlink(),
}
COMMANDS = {
    "forecast": lambda run: ["forecast", str(run), "--steps", "2"],
    "generate": lambda run: ["generate", str(run), "--steps", "2", "--start", "val"],
    "resume": lambda run: ["train", "--resume", str(run)],
    "analyze": lambda run: ["analyze", "gradients", str(run)],
    "backtest": lambda run: ["backtest", str(run), "--folds", "2"],
}


# the commands that read runs of other tasks: a text run's sample, a labelled run's predict
OTHER_RUNS = {
    "sample": (["--text", "{corpus}", "--seq-len", "10"], lambda run: ["sample", str(run), "--length", "5"]),
    "predict": (["--task", "classify", "--set", "task.size=40"],
                lambda run: ["predict", str(run), "--data", str(run.parent / "x.ts")]),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", "--hidden", "8", "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    return run


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_run_gets_one_line_and_is_left_as_it_was(trained, tmp_path, capsys, monkeypatch, damage, command):
    run = tmp_path / "run"
    run.mkdir()
    for f in trained.iterdir():
        if f.is_file():
            (run / f.name).write_bytes(f.read_bytes())
    DAMAGES[damage](run)
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(COMMANDS[command](run)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnntrain: error:"), err
    assert "weights_only=False" not in err and "Traceback" not in err
    assert not (tmp_path / "PWNED").exists()
    assert {f.name: f.read_bytes() for f in run.iterdir()} == before


@pytest.fixture(scope="module")
def other_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("others")
    (folder / "corpus.txt").write_text("the cat sat on the mat. " * 40)
    runs = {}
    for command, (args, _) in OTHER_RUNS.items():
        runs[command] = folder / command
        args = [a.replace("{corpus}", str(folder / "corpus.txt")) for a in args]
        assert main(["train", *args, "--hidden", "8", "--epochs", "1", "--out", str(runs[command]), "--quiet"]) == 0
    return runs


@pytest.mark.parametrize("command", sorted(OTHER_RUNS))
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_sample_and_predict_answer_a_damaged_run_in_one_line(other_runs, tmp_path, capsys, monkeypatch, damage,
                                                               command):
    run = tmp_path / "run"
    run.mkdir()
    for f in other_runs[command].iterdir():
        if f.is_file():
            (run / f.name).write_bytes(f.read_bytes())
    (tmp_path / "x.ts").write_text("@problemName x\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n")
    DAMAGES[damage](run)
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(OTHER_RUNS[command][1](run)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnntrain: error:") and "Traceback" not in err, err
    assert not (tmp_path / "PWNED").exists()
    assert {f.name: f.read_bytes() for f in run.iterdir()} == before
