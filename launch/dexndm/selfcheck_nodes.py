"""The self-check's two nodes: an echo and a probe that times HandCommand round trips."""
from __future__ import annotations

import statistics
import sys
import time

import rclpy
from rclpy.node import Node

from dexndm_description import hand
from dexndm_description.parameters import Param, declare
from dexndm_msgs.msg import HandCommand

PING, PONG = "/dexndm/selfcheck/ping", "/dexndm/selfcheck/pong"


def echo_main() -> None:
    rclpy.init()
    node = Node("selfcheck_echo")
    pub = node.create_publisher(HandCommand, PONG, 10)
    node.create_subscription(HandCommand, PING, pub.publish, 10)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def probe_main() -> None:
    rclpy.init()
    node = Node("selfcheck_probe")
    p = declare(node, (Param("count", 20, "round trips to time"),
                       Param("timeout", 20.0, "s to wait for the echo node and the round trips")))
    count, timeout = p["count"], p["timeout"]
    received: list[HandCommand] = []
    node.create_subscription(HandCommand, PONG, received.append, 10)
    pub = node.create_publisher(HandCommand, PING, 10)
    deadline = time.monotonic() + timeout
    while pub.get_subscription_count() == 0 or node.count_publishers(PONG) == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() > deadline:
            print("selfcheck: the echo node never appeared on DDS; check ROS_DOMAIN_ID and that loopback works")
            sys.exit(1)
    round_trips_ms = []
    for i in range(count):
        msg = HandCommand()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.position = hand.CANONICAL_POSE.tolist()
        msg.position[0] = float(i)
        received.clear()
        start = time.perf_counter()
        pub.publish(msg)
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.01)
        if not received or received[0].position[0] != float(i):
            print(f"selfcheck: round trip {i} lost or corrupted")
            sys.exit(1)
        round_trips_ms.append((time.perf_counter() - start) * 1e3)
    node.destroy_node()
    rclpy.try_shutdown()
    print(f"round_trips={count} rtt_p50_ms={statistics.median(round_trips_ms):.3f} rtt_max_ms={max(round_trips_ms):.3f} ok=1")
