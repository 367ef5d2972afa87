"""teleop node: the WebXR server's samples -> arm PoseStamped targets, rotation axis, policy toggle.

The aiohttp server runs on its own thread; its events go through a queue and wake this node with
a guard condition, so each controller frame is handled on the executor thread as it arrives.
"""
from __future__ import annotations

import logging
import queue
import sys
import time

import rclpy
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from std_srvs.srv import SetBool

from dexndm_description import interfaces as ros
from dexndm_description.parameters import Param, declare
from dexndm_teleop.core import TeleopCore
from dexndm_teleop.messages import axis_to_msg, pose_from_msg, pose_to_msg
from dexndm_teleop.params import PARAMETERS, build_configs, franka_fault
from dexndm_teleop.server import TeleopServer

try:
    from franka_msgs.action import ErrorRecovery
    from franka_msgs.msg import FrankaRobotState
except ImportError:
    ErrorRecovery = FrankaRobotState = None


class TeleopNode(Node):
    def __init__(self):
        super().__init__("teleop")
        # All read at start-up: read-only, so `ros2 param set` says so instead of changing nothing.
        p = declare(self, [Param(name, default, text) for name, (default, text) in PARAMETERS.items()])
        server_config, config = build_configs(p)
        self.core = TeleopCore(config)
        self.frame_id = p["base_frame"]
        self.counts = {"samples": 0, "targets": 0, "holds": 0}
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.target_pub = self.create_publisher(PoseStamped, p["target_topic"], 10)
        self.axis_pub = self.create_publisher(Vector3Stamped, ros.ROTATION_AXIS, ros.LATCHED.profile())
        self.policy = self.create_client(SetBool, p["policy_service"])
        use_franka = p["arm_source"] == "franka" or (p["arm_source"] == "auto" and FrankaRobotState is not None)
        if use_franka and FrankaRobotState is None:
            raise RuntimeError("arm_source:=franka but franka_msgs does not import; source franka_ros2 or use arm_source:=pose")
        if use_franka:
            self.create_subscription(FrankaRobotState, p["arm_state_topic"], self.on_franka_state, 10)
            self.recovery = ActionClient(self, ErrorRecovery, p["recovery_action"])
        else:
            self.create_subscription(PoseStamped, p["arm_pose_topic"], self.on_arm_pose, qos_profile_sensor_data)
            self.recovery = None
        self.get_logger().info(f"arm state from {p['arm_state_topic'] if use_franka else p['arm_pose_topic']}; "
                               f"targets on {self.target_pub.topic_name}")
        self.wake = self.create_guard_condition(self.drain)
        self.ticks = 0
        self.create_timer(1.0 / p["watchdog_rate_hz"], self.on_timer)
        self.server = TeleopServer(server_config, lambda *e: self.push("sample", *e), lambda *e: self.push("connect", *e),
                                   lambda: self.push("disconnect"))
        self.server.start()

    def push(self, *event):
        """Called on the server thread: queue the event and wake the executor."""
        self.events.put(event)
        self.wake.trigger()

    # --- executor thread -----------------------------------------------------------------
    def drain(self):
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if event[0] == "connect":
                self.core.on_connect(event[1])
            elif event[0] == "disconnect":
                self.core.on_disconnect()
            else:
                self.counts["samples"] += 1
                self.act(self.core.on_sample(*event[1:]))

    def act(self, out):
        if out.target is not None:
            self.publish_target(out.target)
            self.counts["targets"] += 1
        if out.axis is not None:
            self.axis_pub.publish(axis_to_msg(out.axis, self.get_clock().now().to_msg()))
            self.get_logger().info(f"rotation axis {self.core.axis.label} {out.axis.round(3).tolist()}")
        if out.policy_request is not None:
            self.request_policy(out.policy_request)
        if out.recover:
            if self.recovery is None or not self.recovery.server_is_ready():
                self.get_logger().warning("error recovery requested, but franka_msgs/ErrorRecovery is not available")
            else:
                self.recovery.send_goal_async(ErrorRecovery.Goal())
                self.get_logger().info("error recovery requested")

    def publish_target(self, pose):
        self.target_pub.publish(pose_to_msg(pose, self.get_clock().now().to_msg(), self.frame_id))

    def request_policy(self, enable: bool):
        if not self.policy.service_is_ready():
            self.get_logger().warning(f"policy service {self.policy.srv_name} is not available; is the policy node running?")
            return
        future = self.policy.call_async(SetBool.Request(data=enable))

        def done(f):
            if f.result() is not None and f.result().success:
                self.core.policy_enabled = enable
            self.get_logger().info(f"policy {'on' if enable else 'off'}: {f.result().message if f.result() else f.exception()}")
        future.add_done_callback(done)

    def on_timer(self):
        self.drain()
        hold = self.core.tick(time.monotonic())
        self.ticks += 1
        if self.ticks % 5:
            return
        if hold is not None:
            self.publish_target(hold)
            self.counts["holds"] += 1
        self.server.send_status(self.core.status())

    def on_arm_pose(self, msg: PoseStamped):
        self.frame_id = msg.header.frame_id or self.frame_id
        self.core.on_arm_state(pose_from_msg(msg), fault=False)

    def on_franka_state(self, msg):
        self.frame_id = msg.o_t_ee.header.frame_id or self.frame_id
        self.core.on_arm_state(pose_from_msg(msg.o_t_ee), franka_fault(msg.robot_mode, msg.current_errors))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[teleop.server] %(levelname)s: %(message)s", stream=sys.stderr)
    rclpy.init()
    node = None
    try:
        node = TeleopNode()
        print("\n".join(node.server.banner()), flush=True)
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except (ValueError, RuntimeError, OSError) as err:
        print(f"teleop: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        if node is not None:
            node.server.stop()
            refused = sum(node.server.refusals.values())
            print(" ".join(f"{k}={v}" for k, v in node.counts.items()) + f" refused={refused}", flush=True)
            node.destroy_node()
        rclpy.try_shutdown()
