"""The LEAP hand's single source of truth, importable without rclpy.

`hand` holds the joint table, limits, poses, gains and unit conversions; `axes` the named
rotation axes; `wrist` the named wrist orientations. Everything speaks motor-ID order and
sim radians.
"""
from dexndm_description import axes, hand, wrist
from dexndm_description.axes import named_axes, parse_axis
from dexndm_description.hand import JOINT_NAMES, LOWER, NUM_JOINTS, UPPER
from dexndm_description.wrist import WRIST_ORIENTATIONS, parse_wrist

__all__ = [
    "JOINT_NAMES", "LOWER", "NUM_JOINTS", "UPPER", "WRIST_ORIENTATIONS",
    "axes", "hand", "named_axes", "parse_axis", "parse_wrist", "wrist",
]
