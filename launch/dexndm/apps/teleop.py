"""Quest 3 teleop: serves the WebXR page; the right controller moves the arm, the left sets the axis.

Open the printed URL on the headset (HTTPS, or http://localhost with `adb reverse`); see docs/TELEOP.md.
"""
from __future__ import annotations

from dexndm.graph import Argument, ArgumentError, NodeSpec, as_bool, as_float

ARGUMENTS = (
    Argument("port", "8443", "TCP port of the page and its WebSocket (0: any free port)"),
    Argument("https", "true", "true: HTTPS with a kept self-signed certificate; false: http://localhost for adb reverse"),
    Argument("bind", "", "listen address ('' = 0.0.0.0 with https, 127.0.0.1 without)"),
    Argument("allowed_hosts", "", "extra host names the page may be opened at, comma-separated"),
    Argument("target_topic", "/cartesian_impedance_example_controller/equilibrium_pose", "PoseStamped arm targets"),
    Argument("arm_source", "auto", "auto (franka_msgs when it imports), franka or pose"),
    Argument("arm_pose_topic", "/franka_robot_state_broadcaster/current_pose", "PoseStamped arm pose (best effort)"),
    Argument("arm_state_topic", "/franka_robot_state_broadcaster/robot_state", "franka_msgs/FrankaRobotState"),
    Argument("scale", "1.0", "arm metres per controller metre"),
    Argument("max_linear_speed", "0.5", "largest target speed (m/s)"),
    Argument("max_angular_speed", "1.5", "largest target angular speed (rad/s)"),
    Argument("workspace_min", "0.2,-0.5,0.05", "workspace box minimum x,y,z (m, base frame)"),
    Argument("workspace_max", "0.8,0.5,0.9", "workspace box maximum x,y,z (m, base frame)"),
    Argument("axis_mode", "buttons", "buttons (X -> z, Y -> -z, left squeeze -> -y) or orientation"),
    Argument("axis_table", "x:z,y:-z,squeeze:-y", "left button -> axis table (buttons mode)"),
)


def _vector(text: str, name: str) -> list[float]:
    values = [as_float(v, name) for v in text.split(",")]
    if len(values) != 3:
        raise ArgumentError(f"argument {name} needs three numbers x,y,z, got {text!r}")
    return values


def nodes(args: dict[str, str]) -> list[NodeSpec]:
    port = as_float(args["port"], "port")
    if port != int(port) or not 0 <= port <= 65535:
        raise ArgumentError(f"argument port must be an integer 0..65535, got {args['port']!r}")
    if args["axis_mode"] not in ("buttons", "orientation"):
        raise ArgumentError(f"argument axis_mode must be buttons or orientation, got {args['axis_mode']!r}")
    parameters = {
        "port": int(port), "https": as_bool(args["https"], "https"), "bind": args["bind"],
        "allowed_hosts": args["allowed_hosts"], "target_topic": args["target_topic"], "arm_source": args["arm_source"],
        "arm_pose_topic": args["arm_pose_topic"], "arm_state_topic": args["arm_state_topic"],
        "scale": as_float(args["scale"], "scale"),
        "max_linear_speed": as_float(args["max_linear_speed"], "max_linear_speed"),
        "max_angular_speed": as_float(args["max_angular_speed"], "max_angular_speed"),
        "workspace_min": _vector(args["workspace_min"], "workspace_min"),
        "workspace_max": _vector(args["workspace_max"], "workspace_max"),
        "axis_mode": args["axis_mode"], "axis_table": args["axis_table"],
    }
    return [NodeSpec("dexndm_teleop", "teleop", "teleop", parameters=parameters, required=True)]
