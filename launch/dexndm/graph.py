"""One description of each app's graph, read by both `ros2 launch` files and the `dexndm` CLI.

An app module defines `ARGUMENTS` (a tuple of `Argument`) and `nodes(args) -> list[NodeSpec]`,
where `args` maps every argument name to its string value. Launch files turn NodeSpecs into
launch_ros Nodes (see `launch_support`); the CLI runs the same executables as processes with
the same parameters (see `runner`). No second list to keep in sync.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

APPS = ("selfcheck", "rotate", "collect", "teleop")


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    description: str

    @classmethod
    def from_param(cls, param) -> "Argument":
        """The app argument of a node parameter declared once (a dexndm_description.parameters.Param)."""
        return cls(param.name, str(param.default), param.description)


@dataclass
class NodeSpec:
    package: str
    executable: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: dict[str, str] = field(default_factory=dict)
    #: When a required node exits, the whole graph stops and its exit code is the app's.
    required: bool = False


class ArgumentError(ValueError):
    """A command-line argument the app does not know or cannot read."""


class GraphFailure(RuntimeError):
    """A required node of a launched graph failed (launch_support raises it so ros2 launch exits 1)."""


def load_app(name: str) -> ModuleType:
    if name not in APPS:
        raise ArgumentError(f"unknown app {name!r}; choose one of {', '.join(APPS)}")
    try:
        return importlib.import_module(f"dexndm.apps.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"dexndm.apps.{name}":
            raise ArgumentError(f"app {name!r} is not built in this workspace yet") from None
        raise


def resolve_arguments(app: ModuleType, given: dict[str, str]) -> dict[str, str]:
    """Defaults overlaid with `given`; ArgumentError naming the valid ones for an unknown name."""
    known = {a.name: a.default for a in app.ARGUMENTS}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ArgumentError(f"unknown argument(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    return {**known, **given}


def launch_nodes(app: ModuleType, configurations: dict[str, str]) -> list[NodeSpec]:
    """The nodes a launch file starts: every launch configuration (not only the declared arguments)
    goes through resolve_arguments, so `ros2 launch dexndm rotate.launch.py hardwre:=dynamixel` is refused
    with the valid names, as the CLI refuses it, instead of silently running the defaults."""
    return app.nodes(resolve_arguments(app, {name: str(value) for name, value in configurations.items()}))


def parse_assignments(tokens: list[str]) -> dict[str, str]:
    """`['axis:=z', 'duration:=10']` -> {'axis': 'z', 'duration': '10'} (ros2 launch syntax)."""
    out: dict[str, str] = {}
    for token in tokens:
        name, sep, value = token.partition(":=")
        if not sep or not name:
            raise ArgumentError(f"cannot read argument {token!r}; write name:=value, e.g. axis:=z")
        out[name] = value
    return out


def as_bool(text: str, name: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ArgumentError(f"argument {name} must be true or false, got {text!r}")


def as_float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArgumentError(f"argument {name} must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ArgumentError(f"argument {name} must be finite, got {text!r}")
    return value
