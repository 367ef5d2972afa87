"""rotation_policy: one HandCommand (+ PolicyStep) per /leap_hand/joint_states; logic in controller/runtime."""
from __future__ import annotations

import collections
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import QuaternionStamped, Vector3, Vector3Stamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from dexndm_description import interfaces as ros
from dexndm_description.parameters import Param, declare
from dexndm_msgs.msg import HandCommand, PolicyStep
from dexndm_msgs.srv import SetRotationAxis
from dexndm_policy.controller import RotationController
from dexndm_policy.runtime import PolicyRuntime

#: axis, residual and enabled apply at run time (`ros2 param set`); the rest is read at start-up.
PARAMETERS = (
    Param("axis", "z", "rotation axis in the palm frame: a name (x, -y, general:7, (1,1,1)) or 'x,y,z'",
          read_only=False),
    Param("wrist", "palm_up", "wrist orientation until /dexndm/wrist_orientation arrives"),
    Param("generalist_model", "", "generalist ONNX model ('' = the installed default)"),
    Param("residual_model", "", "residual ONNX model ('' = the installed default)"),
    Param("residual", True, "add the residual policy's correction", read_only=False),
    Param("enabled", True, "command the policy (false: disabled_command)", read_only=False),
    Param("disabled_command", "hold", "while disabled: hold (last target) or open (open hand)"),
    Param("max_state_age", 0.0, "s: refuse states older than this on the node's clock (0 = off)"),
    Param("state_timeout", 1.0, "s without a state before the node reports a stop"),
    Param("diagnostics_period", 1.0, "s between /diagnostics reports (steady clock)"),
)


class RotationPolicyNode(Node):
    def __init__(self):
        super().__init__("rotation_policy")
        p = declare(self, PARAMETERS)
        runtime = PolicyRuntime(p["generalist_model"] or None, p["residual_model"] or None, p["axis"], p["wrist"], p["residual"])
        self.controller = RotationController(runtime, p["enabled"], p["disabled_command"], p["max_state_age"], p["state_timeout"])
        self.runtime = runtime
        self.inference_ms = collections.deque(maxlen=200)
        stream, any_qos = ros.STREAM.profile(), ros.ANY.profile()
        self.command_pub = self.create_publisher(HandCommand, ros.HAND_COMMAND, stream)
        self.step_pub = self.create_publisher(PolicyStep, ros.POLICY_STEP, stream)
        self.diag_pub = self.create_publisher(DiagnosticArray, ros.DIAGNOSTICS, 10)
        self.create_subscription(JointState, ros.JOINT_STATES, self.on_state, stream)
        self.create_subscription(Vector3Stamped, ros.ROTATION_AXIS, self.on_axis_topic, any_qos)
        self.create_subscription(QuaternionStamped, ros.WRIST_ORIENTATION, self.on_wrist, any_qos)
        self.create_service(SetRotationAxis, ros.POLICY_SET_AXIS, self.on_set_axis)
        self.create_service(SetBool, ros.POLICY_ENABLE, self.on_enable)
        self.add_on_set_parameters_callback(self.on_parameters)
        # Steady clock: under use_sim_time a stopped simulation stops /clock, and the gap check must still run.
        self.create_timer(p["diagnostics_period"], self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"ready: generalist {runtime.generalist.path}, residual {runtime.residual.path} "
                               f"({'on' if runtime.use_residual else 'off'}), axis {runtime.axis.round(3).tolist()}")

    def on_state(self, msg: JointState) -> None:
        stamp = ros.stamp_to_s(msg.header.stamp)
        now = self.get_clock().now().nanoseconds * 1e-9
        decision = self.controller.on_state(msg.position, msg.name, stamp, now, time.monotonic())
        if decision.target is None:
            self.get_logger().error(f"not commanding: {decision.reason}", throttle_duration_sec=1.0)
            return
        command = HandCommand(state_stamp=msg.header.stamp, position=decision.target.tolist())
        command.header.stamp = self.get_clock().now().to_msg()
        self.command_pub.publish(command)
        out = decision.output
        if out is None:
            return
        self.inference_ms.append(out.inference_ms)
        step = PolicyStep(state_stamp=msg.header.stamp, base_target=out.base_target.tolist(), residual=out.residual.tolist(),
                          executed_target=out.executed_target.tolist(), axis=self.runtime.axis.tolist(),
                          inference_ms=out.inference_ms)
        step.header.stamp = command.header.stamp
        self.step_pub.publish(step)

    def on_axis_topic(self, msg: Vector3Stamped) -> None:
        if msg.header.frame_id not in ("", "palm"):
            self.get_logger().error(f"refused axis in frame {msg.header.frame_id!r}: publish it in frame 'palm'")
            return
        try:
            self.runtime.set_axis([msg.vector.x, msg.vector.y, msg.vector.z])
        except ValueError as err:
            self.get_logger().error(f"refused axis from /dexndm/rotation_axis: {err}; keeping {self.runtime.axis.round(3).tolist()}")

    def on_wrist(self, msg: QuaternionStamped) -> None:
        try:
            self.runtime.set_wrist([msg.quaternion.x, msg.quaternion.y, msg.quaternion.z, msg.quaternion.w])
        except ValueError as err:
            self.get_logger().error(f"refused wrist orientation: {err}", throttle_duration_sec=1.0)

    def on_set_axis(self, request, response):
        spec = request.name if request.name else [request.axis.x, request.axis.y, request.axis.z]
        try:
            self.runtime.set_axis(spec)
            response.success, response.message = True, f"axis set to {self.runtime.axis.round(4).tolist()}"
        except ValueError as err:
            response.success, response.message = False, str(err)
        response.axis = Vector3(x=float(self.runtime.axis[0]), y=float(self.runtime.axis[1]), z=float(self.runtime.axis[2]))
        return response

    def on_enable(self, request, response):
        self.controller.set_enabled(request.data)
        response.success = True
        response.message = "enabled (history resets at the next state)" if request.data else \
            f"disabled: commanding {self.controller.disabled_command}"
        return response

    def on_parameters(self, params) -> SetParametersResult:
        for param in params:
            try:
                if param.name == "axis":
                    self.runtime.set_axis(param.value)
                elif param.name == "residual":
                    self.runtime.use_residual = bool(param.value)
                elif param.name == "enabled":
                    self.controller.set_enabled(bool(param.value))
            except ValueError as err:
                return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def publish_diagnostics(self) -> None:
        reason = self.controller.check_gap(time.monotonic())
        if reason:
            self.get_logger().error(f"stopped commanding: {reason}")
        level, message = self.controller.status()
        times = np.asarray(self.inference_ms) if self.inference_ms else np.full(1, np.nan)
        values = {"steps": self.controller.steps, "refused_states": self.controller.refused,
                  "enabled": self.controller.enabled, "residual": self.runtime.use_residual,
                  "axis": ",".join(f"{v:.4f}" for v in self.runtime.axis),
                  "inference_ms_p50": f"{np.median(times):.3f}", "inference_ms_max": f"{np.max(times):.3f}"}
        status = DiagnosticStatus(level=bytes([level]), name="dexndm/rotation_policy", message=message,
                                  hardware_id="leap_hand",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)


def main() -> None:
    rclpy.init()
    try:
        node = RotationPolicyNode()
    except (ValueError, FileNotFoundError) as err:
        print(f"rotation_policy: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(1)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise  # a message taken while the context shuts down (Ctrl-C) is no error
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
