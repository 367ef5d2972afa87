"""Test fixture (not shipped): a lockstep joint-state source standing in for hand_driver in node tests.

It publishes /leap_hand/joint_states, waits for the HandCommand answering that state (by state_stamp),
moves q halfway to the target (a crude first-order servo) and publishes the next state, like the sim
driver's lockstep. It also records every command, PolicyStep and diagnostic it sees.
"""
from __future__ import annotations

import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from dexndm_description import hand
from dexndm_msgs.msg import HandCommand, PolicyStep

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class LockstepHand(Node):
    def __init__(self, name: str = "lockstep_hand"):
        super().__init__(name)
        self.q = hand.CANONICAL_POSE.copy()
        self.tick = 0
        self.commands: list[HandCommand] = []
        self.steps: list[PolicyStep] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.state_pub = self.create_publisher(JointState, "/leap_hand/joint_states", RELIABLE)
        self.create_subscription(HandCommand, "/leap_hand/command", self.commands.append, RELIABLE)
        self.create_subscription(PolicyStep, "/dexndm/policy/step", self.steps.append, RELIABLE)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def spin_until(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.01)
        return predicate()

    def wait_for_policy(self, timeout: float = 30.0) -> bool:
        return self.spin_until(lambda: self.state_pub.get_subscription_count() > 0
                               and self.count_publishers("/leap_hand/command") > 0, timeout)

    def publish_state(self, position=None, names=True) -> JointState:
        """Publish the next state (stamp = tick * 50 ms); position overrides q (e.g. NaN or wrong length)."""
        self.tick += 1
        msg = JointState(name=list(hand.JOINT_NAMES) if names else [],
                         position=[float(v) for v in (self.q if position is None else position)])
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(self.tick * 50_000_000, 1_000_000_000)
        self.state_pub.publish(msg)
        return msg

    def answer(self, state: JointState, timeout: float = 5.0) -> HandCommand | None:
        """The command answering `state`, or None when none came within timeout."""
        def find():
            return next((c for c in self.commands if c.state_stamp == state.header.stamp), None)
        self.spin_until(lambda: find() is not None, timeout)
        return find()

    def step(self, timeout: float = 5.0) -> HandCommand | None:
        """One lockstep tick: publish, wait for the answer, move q halfway to its target."""
        command = self.answer(self.publish_state(), timeout)
        if command is not None:
            self.q = self.q + 0.5 * (np.asarray(command.position) - self.q)
        return command
