"""Plain-module tests of the graph description shared by launch files and the CLI."""
import pytest

from dexndm import graph


def test_parse_assignments():
    assert graph.parse_assignments(["axis:=z", "duration:=10", "wrist:=0,0,0,1"]) == {
        "axis": "z", "duration": "10", "wrist": "0,0,0,1"}
    with pytest.raises(graph.ArgumentError):
        graph.parse_assignments(["axis=z"])


def test_resolve_arguments_overlays_defaults_and_names_the_valid_ones():
    app = graph.load_app("selfcheck")
    assert graph.resolve_arguments(app, {"count": "3"})["count"] == "3"
    with pytest.raises(graph.ArgumentError, match="valid: count, timeout"):
        graph.resolve_arguments(app, {"cnt": "3"})


def test_typed_argument_readers():
    assert graph.as_bool("True", "x") is True and graph.as_bool("off", "x") is False
    with pytest.raises(graph.ArgumentError):
        graph.as_bool("maybe", "x")
    assert graph.as_float("0.5", "x") == 0.5
    for bad in ("fast", "nan", "inf"):
        with pytest.raises(graph.ArgumentError):
            graph.as_float(bad, "x")


def test_launch_files_refuse_misspelled_arguments_like_the_cli():
    """ros2 launch passed only the declared names on (hardwre:=dynamixel ran the sim): launch_support now
    hands every launch configuration to graph.launch_nodes, which refuses unknown ones."""
    app = graph.load_app("rotate")
    declared = {a.name: a.default for a in app.ARGUMENTS}
    with pytest.raises(graph.ArgumentError, match=r"unknown argument\(s\) hardwre; valid: axis, duration"):
        graph.launch_nodes(app, {**declared, "hardwre": "dynamixel"})
    specs = graph.launch_nodes(app, {**declared, "hardware": "emulated"})
    assert specs[0].parameters["backend"] == "emulated"



def test_realtime_factor_is_declared_once_for_the_apps():
    """rotate and collect take the argument from the one declaration (dexndm_description.parameters)."""
    from dexndm_description.parameters import REALTIME_FACTOR

    for name in ("rotate", "collect"):
        app = graph.load_app(name)
        (arg,) = [a for a in app.ARGUMENTS if a.name == "realtime_factor"]
        assert arg == graph.Argument.from_param(REALTIME_FACTOR)
        assert float(graph.resolve_arguments(app, {})["realtime_factor"]) == REALTIME_FACTOR.default
