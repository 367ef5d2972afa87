"""Chaos Box collection: the hand driver and the chaos_box collector; exits when N episodes are recorded.

    dexndm collect episodes:=4000 output:=data/chaos_box/palm_down source:=sim_rollouts source_path:=data/rollouts
    dexndm collect episodes:=3 backend:=sim realtime_factor:=0     # a quick run in the simulated Chaos Box

Rerun the same command on the same output to resume after a crash. The last line is
`episodes=... transitions=... bag=PATH ...`.
"""
from __future__ import annotations

from dexndm import viz
from dexndm.graph import Argument, ArgumentError, NodeSpec, as_bool, as_float
from dexndm_description.interfaces import EPISODE, HAND_COMMAND, JOINT_STATES
from dexndm_description.parameters import REALTIME_FACTOR

ARGUMENTS = (
    Argument("episodes", "1", "episodes the output directory should hold (400 steps each)"),
    Argument("output", "data/chaos_box", "output rosbag2 directory (created or resumed)"),
    Argument("source", "sine", "replay source: sim_rollouts, sine, square, square_noise or file"),
    Argument("source_path", "", "dataset directory (sim_rollouts) or .npy/.csv targets (file)"),
    Argument("noise_sigma", "0.01", "Gaussian noise added to replayed targets (rad)"),
    Argument("noise_probability", "0.5", "probability per step that the noise is added"),
    Argument("wrist", "palm_down", "wrist orientation (name or x,y,z,w) for the driver and the record; "
                                   "the simulated Chaos Box takes any but palm_up"),
    Argument("seed", "0", "seed of the replay source (and of the simulated hand)"),
    Argument("steps", "400", "control steps per episode"),
    Argument("backend", "sim", "hand driver backend: sim, emulated or dynamixel"),
    Argument("port", "/dev/ttyUSB0", "serial port (dynamixel backend)"),
    Argument.from_param(REALTIME_FACTOR),
    Argument("command_timeout", "0.5", "driver: hold the last target when no valid command came for this long (s)"),
    Argument("scene", "chaos_box", "simulated scene: chaos_box or grasp"),
    Argument("object", "none", "simulated object set in the hand, or none"),
    Argument("min_free_mb", "200", "stop before an episode when less disk space is free (MB)"),
    Argument("state_timeout", "5.0", "stop when the driver sends no joint state for this long (s)"),
    Argument("progress", "true", "show a progress bar on stderr"),
    *viz.ARGUMENTS,
)


def _int(text: str, name: str, minimum: int = 0) -> int:
    value = as_float(text, name)
    if value != int(value) or value < minimum:
        raise ArgumentError(f"argument {name} must be an integer >= {minimum}, got {text!r}")
    return int(value)


def nodes(args: dict[str, str]) -> list[NodeSpec]:
    backend = args["backend"]
    if backend not in ("sim", "emulated", "dynamixel"):
        raise ArgumentError(f"argument backend must be sim, emulated or dynamixel, got {backend!r}")
    driver = {"backend": backend, "port": args["port"], "wrist": args["wrist"], "scene": args["scene"],
              "object": args["object"], "world": "target", "seed": _int(args["seed"], "seed"),
              "realtime_factor": as_float(args["realtime_factor"], "realtime_factor"),
              "command_timeout": as_float(args["command_timeout"], "command_timeout")}
    sim = backend == "sim"
    if sim:
        driver["use_sim_time"] = True  # states stamped with sim time: exactly 50 ms apart in the bag
    collector = {
        "output_dir": args["output"], "episodes": _int(args["episodes"], "episodes", 1), "source": args["source"],
        "source_path": args["source_path"], "noise_sigma": as_float(args["noise_sigma"], "noise_sigma"),
        "noise_probability": as_float(args["noise_probability"], "noise_probability"), "wrist": args["wrist"],
        "seed": _int(args["seed"], "seed"), "steps": _int(args["steps"], "steps", 1),
        "min_free_mb": as_float(args["min_free_mb"], "min_free_mb"),
        "state_timeout": as_float(args["state_timeout"], "state_timeout"),
        "start_on_launch": True, "exit_when_done": True, "progress_bar": as_bool(args["progress"], "progress"),
    }
    if sim:  # one clock for the graph: commands and events are stamped with the sim time of the states
        collector["use_sim_time"] = True
    viewer = viz.viewer_nodes(args, str(args["output"]).rstrip("/") + ".rrd", "collect",
                              args["object"] if args["scene"] == "grasp" else "none", args["wrist"],
                              match=(JOINT_STATES, HAND_COMMAND, EPISODE))
    if sim and viewer:
        driver["start_gate"] = viz.start_gates(viewer)  # the sim waits for the viewer: it sees the first state
    return [
        NodeSpec("dexndm_driver", "hand_driver", "hand_driver", parameters=driver),
        NodeSpec("dexndm_collect", "chaos_box", "chaos_box", parameters=collector, required=True),
        *viewer,
    ]
