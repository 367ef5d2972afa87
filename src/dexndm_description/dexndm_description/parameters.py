"""ROS parameter tables as plain data, declared with ParameterDescriptors (description, read-only).

A node lists its parameters once (`Param(name, default, description, read_only)`); `declare` gives
each a ParameterDescriptor, so `ros2 param describe` explains it and `ros2 param set` of a
construction-time setting is refused ("read-only") instead of succeeding and doing nothing. Only
parameters a node really applies at run time have read_only=False. No rclpy import here.

A setting that several nodes and apps expose is declared once, below, and each of them takes it from
here (the launch apps turn it into their argument with `dexndm.graph.Argument.from_param`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    read_only: bool = True  # read once at construction; changing it needs a restart


def declare(node, params) -> dict:
    """Declare every Param on the node (an rclpy Node); returns {name: value}."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for p in params:
        suffix = "" if not p.read_only else " (read-only: set it at start-up)"
        descriptor = ParameterDescriptor(description=p.description + suffix, read_only=p.read_only)
        values[p.name] = node.declare_parameter(p.name, p.default, descriptor).value
    return values


#: The simulated hand's lockstep pacing: the hand driver's parameter and the rotate and collect apps' argument.
REALTIME_FACTOR = Param("realtime_factor", 1.0, "simulated hand only: 1 paces the lockstep to the wall clock, "
                        "0 runs as fast as commands come")
