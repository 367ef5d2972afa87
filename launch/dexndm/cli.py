"""`dexndm APP [name:=value ...]`: run an app's graph on this machine (the wheels' `ros2 launch`).

    dexndm selfcheck                 # the workspace self-check
    dexndm rotate axis:=z            # the rotation policy on a simulated hand
    dexndm APP --help                # the app's arguments and defaults
"""
from __future__ import annotations

import sys

from dexndm.graph import APPS, ArgumentError, load_app, parse_assignments, resolve_arguments
from dexndm.runner import GraphError, run_graph


def _usage() -> str:
    return __doc__.strip() + "\n\napps: " + ", ".join(APPS)


def _app_help(name, app) -> str:
    lines = [f"dexndm {name} [name:=value ...]", (app.__doc__ or "").strip(), "", "arguments:"]
    width = max(len(a.name) for a in app.ARGUMENTS)
    for arg in app.ARGUMENTS:
        lines.append(f"  {arg.name:<{width}}  {arg.description} (default: {arg.default!r})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    try:
        app = load_app(name)
        if any(token in ("-h", "--help") for token in rest):
            print(_app_help(name, app))
            return 0
        args = resolve_arguments(app, parse_assignments(rest))
        if hasattr(app, "run"):
            return app.run(args)
        return run_graph(app.nodes(args))
    except (ArgumentError, GraphError, FileNotFoundError) as err:
        print(f"dexndm {name}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
