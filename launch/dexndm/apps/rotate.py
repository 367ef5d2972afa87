"""Rotate an object in-hand about an axis: hand_driver + rotation_policy + rotation_monitor (+ gap_monitor).

Ends with `rot_rad=... ttf_s=... rate_hz=... latency_p50_ms=... latency_p99_ms=...` and saves a plot
of the rotation angle and the joint targets (definitions in docs/POLICY.md). On hardware:=dynamixel
there is no object pose, so rot_rad and ttf_s are nan. In simulation (sim, emulated) the line also holds
track_err_rad: the run's joints against the base policy run in the source world from the same first state
(docs/DEXNDM.md), so world:=target with residual:=true and residual:=false shows the gap and what the
residual does about it. monitor_gap:=true adds the reality-gap monitor
(dynamics.onnx beside the policy); its figures join the last line (gap_mean_mrad=...).
"""
from __future__ import annotations

from pathlib import Path

from dexndm import viz
from dexndm.graph import Argument, ArgumentError, NodeSpec, as_bool, as_float
from dexndm_description.interfaces import (GAP_READY, HAND_COMMAND, JOINT_STATES, MONITOR_READY, OBJECT_POSE,
                                          POLICY_STEP)
from dexndm_description.parameters import REALTIME_FACTOR

HARDWARE = ("sim", "emulated", "dynamixel")
WORLDS = ("target", "source")

ARGUMENTS = (
    Argument("axis", "z", "rotation axis in the palm frame: x, -y, general:7, (1,1,1) or '0.3,0,1'"),
    Argument("hardware", "sim", "hand backend: sim (simulated hand), emulated (Dynamixel bus emulated on a pty) or dynamixel"),
    Argument("residual", "true", "add the residual policy's correction (true/false)"),
    Argument("wrist", "palm_up", "wrist orientation: palm_up, palm_down, base_up, base_down, thumb_up, thumb_down or 'x,y,z,w'"),
    Argument("object", "normal_cylinder", "simulated object set name (sim/emulated only)"),
    Argument("world", "target", "simulated physics (sim/emulated only): target (servo model, stands in for the real "
             "hand) or source (the training simulator's ideal PD)"),
    Argument("generalist_model", "", "generalist ONNX model (empty: the installed default)"),
    Argument("residual_model", "", "residual ONNX model (empty: the installed default)"),
    Argument.from_param(REALTIME_FACTOR),
    Argument("duration", "20.0", "run length in seconds of the driver's clock (sim seconds in simulation)"),
    Argument("plot", "output/rotate.png", "where to save the plot (PNG; none or empty: no plot)"),
    Argument("port", "/dev/ttyUSB0", "serial port of the U2D2 (hardware:=dynamixel)"),
    Argument("monitor_gap", "false", "run the reality-gap monitor: dynamics.onnx predicts each joint's next position, "
             "the per-joint error goes to /dexndm/gap/error (true/false)"),
    Argument("gap_model", "", "dynamics ONNX model of the gap monitor (empty: the installed default dynamics.onnx)"),
    *viz.ARGUMENTS,
)


def nodes(args: dict[str, str]) -> list[NodeSpec]:
    from dexndm_description.axes import parse_axis
    from dexndm_description.wrist import parse_wrist

    for name, parse in (("axis", parse_axis), ("wrist", parse_wrist)):
        try:
            parse(args[name])
        except ValueError as err:
            raise ArgumentError(f"argument {name}: {err}") from None
    hardware = args["hardware"].strip().lower()
    if hardware not in HARDWARE:
        raise ArgumentError(f"argument hardware must be one of {', '.join(HARDWARE)}, got {args['hardware']!r}")
    for name in ("generalist_model", "residual_model"):
        if args[name] and not Path(args[name]).is_file():
            raise ArgumentError(f"argument {name}: {args[name]} does not exist; give an .onnx file or leave it "
                                "empty for the installed default model")
    world = args["world"].strip().lower()
    if world not in WORLDS:
        raise ArgumentError(f"argument world must be one of {', '.join(WORLDS)}, got {args['world']!r}")
    gap = as_bool(args["monitor_gap"], "monitor_gap")
    if gap:
        from dexndm_policy.gap_monitor import HOW_TO_MAKE, default_dynamics_path

        model = Path(args["gap_model"]) if args["gap_model"] else default_dynamics_path()
        if not model.is_file():
            raise ArgumentError(f"monitor_gap:=true needs a joint-wise dynamics model, and {model} does not exist: "
                                f"{HOW_TO_MAKE}")
    realtime_factor = as_float(args["realtime_factor"], "realtime_factor")
    duration = as_float(args["duration"], "duration")
    if realtime_factor < 0 or duration <= 0:
        raise ArgumentError("realtime_factor must be >= 0 and duration > 0")
    driver = {"backend": hardware, "wrist": args["wrist"], "object": args["object"], "world": world,
              "realtime_factor": realtime_factor}
    if hardware == "dynamixel":
        driver["port"] = args["port"]
    policy = {"axis": args["axis"], "wrist": args["wrist"], "generalist_model": args["generalist_model"],
              "residual_model": args["residual_model"], "residual": as_bool(args["residual"], "residual"),
              # Sim stamps are sim time, not comparable with the node's clock; hardware stamps are wall time.
              "max_state_age": 0.0 if hardware == "sim" else 0.25}
    plot = "" if args["plot"].strip().lower() in ("", "none") else args["plot"]
    monitor = {"duration": duration, "plot": plot, "axis": args["axis"], "wrist": args["wrist"],
               "measure_object": hardware != "dynamixel", "track_reference": hardware != "dynamixel",
               "generalist_model": args["generalist_model"], "object": args["object"],
               "reference_reset": "canonical" if hardware == "sim" else ""}
    posed = hardware != "dynamixel"
    viewer = viz.viewer_nodes(args, viz.beside(plot, "output/rotate.rrd"), "rotate",
                              args["object"] if posed else "none", args["wrist"], args["axis"],
                              (JOINT_STATES, HAND_COMMAND, POLICY_STEP, *([OBJECT_POSE] if posed else [])))
    if hardware == "sim":
        # The sim graph's clock is the simulation's: the driver stamps states with sim time and publishes
        # /clock, and every node runs on it, so PolicyStep, state_stamp and joint states agree.
        # No state, no step before the monitor (and the gap monitor, and the viewer, with them) has matched the graph.
        driver["start_gate"] = viz.start_gates(viewer, MONITOR_READY, *([GAP_READY] if gap else []))
    specs = [
        NodeSpec("dexndm_driver", "hand_driver", "hand_driver", parameters=driver),
        NodeSpec("dexndm_policy", "rotation_policy", "rotation_policy", parameters=policy),
        NodeSpec("dexndm_policy", "rotation_monitor", "rotation_monitor", parameters=monitor, required=True),
    ]
    if gap:
        specs.insert(2, NodeSpec("dexndm_policy", "gap_monitor", "gap_monitor", parameters={"model": str(model)}))
    if hardware == "sim":
        for spec in specs:
            spec.parameters["use_sim_time"] = True
    return specs + viewer  # the viewer uses no clock: no /clock subscription for it
