"""TEST FIXTURE ONLY (not shipped): a minimal lockstep joint-state publisher standing in for hand_driver.

It publishes a JointState stamped with its own 50 ms tick clock, waits for the HandCommand answering it
(or `--command-timeout` s, then holds), moves q a first-order step toward the target and publishes the
next state. Also publishes the wrist orientation and an OK diagnostics status every 20 ticks.
`--error-after N` publishes a diagnostics ERROR at tick N; `--silent-after N` stops publishing at tick N.
"""
import argparse
import threading

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import QuaternionStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from dexndm_description import hand
from dexndm_msgs.msg import HandCommand


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--command-timeout", type=float, default=0.5)
    parser.add_argument("--error-after", type=int, default=-1)
    parser.add_argument("--silent-after", type=int, default=-1)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("lockstep_fixture")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    state_pub = node.create_publisher(JointState, "/leap_hand/joint_states", qos)
    wrist_pub = node.create_publisher(QuaternionStamped, "/dexndm/wrist_orientation", 10)
    diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
    answered = threading.Event()
    target = {"q": hand.CANONICAL_POSE.copy(), "stamp": None}

    def on_command(msg):
        if (msg.state_stamp.sec, msg.state_stamp.nanosec) == target["stamp"]:
            target["q"] = np.asarray(msg.position)
            answered.set()

    node.create_subscription(HandCommand, "/leap_hand/command", on_command, qos)
    q = hand.CANONICAL_POSE.copy()
    tick = 0
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            if tick == args.silent_after:
                executor.spin_once(timeout_sec=0.1)
                continue
            sec, nsec = divmod(tick * 50_000_000, 10**9)
            msg = JointState(name=list(hand.JOINT_NAMES), position=q.tolist(), velocity=[0.0] * 16, effort=[0.0] * 16)
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec + 1000, nsec
            target["stamp"] = (sec + 1000, nsec)
            answered.clear()
            state_pub.publish(msg)
            if tick % 20 == 0:
                w = QuaternionStamped()
                w.header.stamp = msg.header.stamp
                w.quaternion.x, w.quaternion.w = 1.0, 0.0  # palm_up
                wrist_pub.publish(w)
                level = DiagnosticStatus.ERROR if 0 <= args.error_after <= tick else DiagnosticStatus.OK
                diag_pub.publish(DiagnosticArray(header=msg.header, status=[
                    DiagnosticStatus(level=level, name="leap_hand: bus", message="servo 3 overload" if level == DiagnosticStatus.ERROR else "ok")]))
            deadline = node.get_clock().now().nanoseconds + args.command_timeout * 1e9
            while not answered.is_set() and node.get_clock().now().nanoseconds < deadline:
                executor.spin_once(timeout_sec=0.01)
            q = q + 0.5 * (hand.clip_to_limits(target["q"]) - q)
            tick += 1
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
