"""The `viz:=` arguments shared by the apps, and the rerun_viewer node they add (dexndm_viz).

    viz:=none     nothing extra runs (default)
    viz:=rerun    write an .rrd recording (beside the plot, or beside the bag), open it later with `rerun FILE`
    viz:=web      also serve the rerun web viewer on 127.0.0.1:viz_port and print its URL
    viz:=window   also open the native rerun viewer (needs a display)

The viewer publishes /dexndm/viz/ready (latched) once the topics it is told to `match` have publishers;
a sim graph adds it to its driver's start gates (`start_gates`), so the run waits for the viewer too.
"""
from __future__ import annotations

from pathlib import Path

from dexndm.graph import Argument, ArgumentError, NodeSpec, as_float
from dexndm_description.interfaces import HAND_COMMAND, JOINT_STATES, VIEWER_READY

VIZ_MODES = ("none", "rerun", "web", "window")

ARGUMENTS = (
    Argument("viz", "none", "live view with rerun: none, rerun (write an .rrd), web (serve the web viewer on "
                            "localhost, prints its URL) or window (native viewer)"),
    Argument("viz_recording", "", ".rrd file the viewer writes (empty: beside the plot or the bag)"),
    Argument("viz_port", "9090", "HTTP port of the web viewer on 127.0.0.1 (viz:=web; 0 = any free port)"),
)


def viewer_nodes(args: dict[str, str], recording: str, name: str, object_set: str = "none", wrist: str = "palm_up",
                 axis: str = "z", match: tuple[str, ...] = (JOINT_STATES, HAND_COMMAND)) -> list[NodeSpec]:
    """[] for viz:=none, else the rerun_viewer NodeSpec; ArgumentError when the mode cannot run here.

    `match`: the topics whose publishers the viewer must have matched before it signals ready."""
    mode = args["viz"].strip().lower()
    if mode not in VIZ_MODES:
        raise ArgumentError(f"argument viz must be one of {', '.join(VIZ_MODES)}, got {args['viz']!r}")
    if mode == "none":
        return []
    port = as_float(args["viz_port"], "viz_port")
    if port != int(port) or not 0 <= port <= 65535:
        raise ArgumentError(f"argument viz_port must be an integer 0..65535, got {args['viz_port']!r}")
    from dexndm_viz.viewers import VizError, check_mode

    try:
        check_mode(mode)
    except VizError as err:
        raise ArgumentError(f"viz:={mode}: {err}") from None
    parameters = {"mode": mode, "recording": args["viz_recording"] or recording, "web_port": int(port),
                  "object": object_set, "wrist": wrist, "axis": axis, "name": name, "match": ",".join(match),
                  "start_type_description_service": False}  # one entity fewer in the viewer's executor
    return [NodeSpec("dexndm_viz", "rerun_viewer", "rerun_viewer", parameters=parameters)]


def start_gates(viewer: list[NodeSpec], *others: str) -> str:
    """The sim driver's `start_gate`: the other ready topics, and the viewer's when the graph has one."""
    return ",".join((*others, *([VIEWER_READY] if viewer else [])))


def beside(path: str, fallback: str, suffix: str = ".rrd") -> str:
    """`output/rotate.png` -> `output/rotate.rrd`; the fallback when path is empty."""
    return str(Path(path).with_suffix(suffix)) if path else fallback
