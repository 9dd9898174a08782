"""The README's commands are real: every `rnntrain train` line parses and validates, and every
other subcommand it shows exists (the docs cannot drift from the CLI unnoticed)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rnntrain.cli.main import build_parser
from rnntrain.cli.train import config_from_args

README = Path(__file__).parent.parent / "README.md"


DOCS = sorted((README.parent / "docs").glob("*.md"))
# the docs' shell variables: reproductions.md's COMMON, a loop over problems
VARIABLES = {"$COMMON": "--seed 1 --set threads=1 --set train.restore_best=false", "$p": "adding"}


def readme_commands(path: Path = README):
    """`rnntrain ...` (and `torchrun ... -m rnntrain ...`) lines of a Markdown file's sh and
    bash blocks, continuation lines joined, comments dropped, shell variables filled in."""
    text = path.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip().removesuffix("; done")
            for name, value in VARIABLES.items():
                line = line.replace(name, value)
            if line.startswith("torchrun"):
                line = "rnntrain " + line.split("-m rnntrain", 1)[1]
            if line.startswith("rnntrain "):
                commands.append(shlex.split(line)[1:])
    return commands


COMMANDS = readme_commands()
DOC_COMMANDS = [(d.name, c) for d in DOCS for c in readme_commands(d)]


def test_the_readme_shows_every_subcommand():
    shown = {c[0] for c in COMMANDS}
    assert {"train", "forecast", "sample", "generate", "predict", "analyze", "gradcheck"} <= shown


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_parses_and_its_config_validates(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prices.csv").write_text("date,close,volume\n2024-01-01,1,2\n", encoding="utf-8")
    (tmp_path / "book.txt").write_text("x", encoding="utf-8")
    if argv[0] == "train" and len(argv) > 1 and argv[1].endswith(".toml"):
        argv = [argv[0], str(README.parent / argv[1]), *argv[2:]]
    args = build_parser().parse_args(argv)
    if args.cmd == "train" and not args.resume:
        config = config_from_args(args)  # raises UserError on an unknown key or a bad value
        assert config.train.epochs > 0


@pytest.mark.parametrize("doc,argv", DOC_COMMANDS, ids=[f"{d}: {' '.join(c)[:50]}" for d, c in DOC_COMMANDS])
def test_docs_train_commands_parse_and_validate(doc, argv):
    args = build_parser().parse_args(argv)
    if args.cmd == "train" and not args.resume and not (argv[1:] and argv[1].endswith(".toml")):
        assert config_from_args(args).train.epochs > 0
