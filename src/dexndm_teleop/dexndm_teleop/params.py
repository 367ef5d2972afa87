"""The teleop node's parameters (one table: names, typed defaults, meaning) and the configs they build.

No rclpy: the node declares every entry of PARAMETERS, the `dexndm teleop` app passes the same
names, and `build_configs` turns the values into ServerConfig and TeleopConfig (ValueError with
the parameter's name for a bad value).
"""
from __future__ import annotations

from pathlib import Path

from dexndm_description.interfaces import POLICY_ENABLE
from dexndm_teleop.axis import DEFAULT_TABLE, AxisConfig
from dexndm_teleop.clutch import ClutchConfig
from dexndm_teleop.core import TeleopConfig
from dexndm_teleop.server import ServerConfig

TARGET_TOPIC = "/cartesian_impedance_example_controller/equilibrium_pose"

PARAMETERS: dict[str, tuple[object, str]] = {
    "port": (8443, "TCP port of the page and the WebSocket (0: any free port)"),
    "https": (True, "HTTPS with a self-signed certificate; false: plain HTTP on 127.0.0.1 for adb reverse"),
    "bind": ("", "listen address ('' = 0.0.0.0 with https, 127.0.0.1 without)"),
    "cert_dir": ("", "where the certificate is kept ('' = ~/.config/dexndm/teleop)"),
    "allowed_hosts": ("", "extra host names/addresses the page may be opened at, comma-separated"),
    "target_topic": (TARGET_TOPIC, "geometry_msgs/PoseStamped arm targets"),
    "arm_source": ("auto", "arm state: auto (franka_msgs when importable), franka, or pose"),
    "arm_state_topic": ("/franka_robot_state_broadcaster/robot_state", "franka_msgs/FrankaRobotState (reliable)"),
    "arm_pose_topic": ("/franka_robot_state_broadcaster/current_pose", "PoseStamped arm pose (best effort)"),
    "base_frame": ("base", "frame_id of targets until the arm pose names its own"),
    "scale": (1.0, "arm metres per controller metre"),
    "rotation_scale": (1.0, "arm radians per controller radian"),
    "workspace_min": ([0.2, -0.5, 0.05], "workspace box minimum x, y, z (m, base frame)"),
    "workspace_max": ([0.8, 0.5, 0.9], "workspace box maximum x, y, z (m, base frame)"),
    "max_linear_speed": (0.5, "largest target speed (m/s)"),
    "max_angular_speed": (1.5, "largest target angular speed (rad/s)"),
    "max_stream_age": (0.2, "hold the arm when the newest controller frame is older than this (s)"),
    "axis_mode": ("buttons", "buttons (table) or orientation (left controller twist)"),
    "axis_table": (DEFAULT_TABLE, "left button -> axis, e.g. x:z,y:-z,squeeze:-y"),
    "short_axis": ("x", "controller grip-space axis whose rotation is down-weighted (orientation mode)"),
    "short_axis_weight": (0.3, "weight of the short-axis rotation component (orientation mode)"),
    "palm_in_flange": ([0.0, 0.0, 0.0, 1.0], "palm frame orientation in the arm flange frame (x, y, z, w)"),
    "recover_button": ("a", "right-controller button that requests arm error recovery: a, b or thumbstick"),
    "policy_service": (POLICY_ENABLE, "std_srvs/SetBool toggled by the right trigger"),
    "recovery_action": ("/action_server/error_recovery", "franka_msgs/action/ErrorRecovery"),
    "watchdog_rate_hz": (50.0, "stream watchdog rate; holds and status go out at a fifth of it"),
}


def build_configs(values: dict) -> tuple[ServerConfig, TeleopConfig]:
    def number(name: str) -> float:
        return float(values[name])

    try:
        server = ServerConfig(
            port=int(values["port"]), https=bool(values["https"]), bind=str(values["bind"]),
            allowed_hosts=tuple(h.strip() for h in str(values["allowed_hosts"]).split(",") if h.strip()),
            **({"cert_dir": Path(values["cert_dir"]).expanduser()} if values["cert_dir"] else {}),
        )
        clutch = ClutchConfig(
            scale=number("scale"), rotation_scale=number("rotation_scale"),
            workspace_min=tuple(map(float, values["workspace_min"])), workspace_max=tuple(map(float, values["workspace_max"])),
            max_linear_speed=number("max_linear_speed"), max_angular_speed=number("max_angular_speed"),
        )
        palm = tuple(map(float, values["palm_in_flange"]))
        if len(palm) != 4:
            raise ValueError(f"palm_in_flange needs 4 numbers (x, y, z, w), got {len(palm)}")
        axis = AxisConfig(mode=str(values["axis_mode"]), table=str(values["axis_table"]), short_axis=str(values["short_axis"]),
                          short_axis_weight=number("short_axis_weight"), palm_in_flange=palm)
        teleop = TeleopConfig(clutch=clutch, axis=axis, max_stream_age_s=number("max_stream_age"),
                              recover_button=str(values["recover_button"]))
    except (TypeError, ValueError) as err:
        raise ValueError(f"teleop parameters: {err}") from None
    if values["arm_source"] not in ("auto", "franka", "pose"):
        raise ValueError(f"teleop parameters: arm_source must be auto, franka or pose, got {values['arm_source']!r}")
    return server, teleop


def franka_fault(robot_mode: int, errors) -> bool:
    """True when a FrankaRobotState forbids targets: REFLEX, USER_STOPPED, AUTOMATIC_ERROR_RECOVERY or any error flag."""
    if robot_mode in (4, 5, 6):
        return True
    return any(bool(getattr(errors, name)) for name in errors.get_fields_and_field_types())
