"""A ROS peer for the teleop tests and benchmark: publishes an arm pose, records targets and axes,
answers /dexndm/policy/enable.

It stands in for the arm's state broadcaster and for the controller that consumes targets; it runs
its own executor thread so callers can block while it records.
"""
from __future__ import annotations

import threading
import time

from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from std_srvs.srv import SetBool

from dexndm_description import interfaces as ros


class Probe:
    """Publishes an arm pose (best effort, 50 Hz) and records targets and axes with receipt times."""

    def __init__(self, target_topic: str, arm_topic: str, arm_pose=(0.5, 0.0, 0.4), arm_quat=(1.0, 0.0, 0.0, 0.0),
                 policy_service: str = ros.POLICY_ENABLE):
        self.node = Node("teleop_test_probe")
        self.targets: list[tuple[float, PoseStamped]] = []
        self.axes: list[Vector3Stamped] = []
        self.lock = threading.Lock()
        self.node.create_subscription(PoseStamped, target_topic, self._on_target, 100)
        self.node.create_subscription(Vector3Stamped, ros.ROTATION_AXIS, self._on_axis, ros.LATCHED.profile())
        self.arm_pub = self.node.create_publisher(PoseStamped, arm_topic, qos_profile_sensor_data)
        self.arm = PoseStamped()
        self.arm.header.frame_id = "fr3_link0"
        self.arm.pose.position.x, self.arm.pose.position.y, self.arm.pose.position.z = arm_pose
        o = self.arm.pose.orientation
        o.x, o.y, o.z, o.w = arm_quat
        self.node.create_timer(0.02, lambda: self.arm_pub.publish(self.arm))
        self.policy_requests: list[bool] = []
        self.node.create_service(SetBool, policy_service, self._on_policy)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_target(self, msg):
        with self.lock:
            self.targets.append((time.time(), msg))

    def _on_axis(self, msg):
        with self.lock:
            self.axes.append(msg)

    def _on_policy(self, request, response):
        """Stands in for the policy node's enable service: accepts and records each request."""
        self.policy_requests.append(request.data)
        response.success, response.message = True, "policy " + ("enabled" if request.data else "disabled")
        return response

    def target_count(self) -> int:
        with self.lock:
            return len(self.targets)

    def targets_since(self, index: int) -> list[PoseStamped]:
        with self.lock:
            return [m for _, m in self.targets[index:]]

    def wait(self, predicate, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def close(self):
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
