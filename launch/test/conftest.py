"""Fixtures of the launch package's tests."""
import pytest


@pytest.fixture
def refused(monkeypatch, capsys):
    """refused("rotate", "axis:=sideways") runs `dexndm rotate axis:=sideways` in this process (cli.main, the
    console script's code, without a fresh interpreter) and returns its stderr, after checking that it
    exited with 2 before starting any node (a graph it would have run fails the test instead)."""
    from dexndm import cli

    def no_graph(specs):
        raise AssertionError(f"the arguments were accepted: it would have run {[s.name for s in specs]}")

    monkeypatch.setattr(cli, "run_graph", no_graph)

    def run(*argv: str) -> str:
        capsys.readouterr()
        code = cli.main(list(argv))
        err = capsys.readouterr().err
        assert code == 2, err
        return err

    return run
