"""The right LEAP hand as MJCF, generated from the kinematic table of ../shared/LEAP_HAND.md.

The body tree follows the hand's chain (for the fingers mcp nearer the palm, then abd); every hinge
turns about `0 0 -1` in its child body frame. Collision uses primitives only: boxes for the palm and
the servo blocks, capsules along the links, the published fingertip boxes. Lengths m, masses kg,
quaternions w x y z (MuJoCo order) inside this module only.

`hand_body_xml()` returns the `<body name="palm">` subtree; scene.py mounts it under a wrist frame and
adds actuators, objects and the world. Joint names are the motor names of `hand.JOINT_NAMES`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dexndm_description import hand


@dataclass(frozen=True)
class Link:
    """One body of the chain: its parent, pose in the parent (m, quat w x y z) and hinge joint."""

    body: str
    parent: str
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]
    joint: str
    mass: float  # kg


_BASE_QUAT = (0.5, 0.5, 0.5, -0.5)
_FINGER_BASES = {"if": (-0.007, 0.023, -0.0187), "mf": (-0.0071, -0.0224, -0.0187), "rf": (-0.00709, -0.0678, -0.0187)}


def _finger(prefix: str) -> list[Link]:
    return [
        Link(f"{prefix}_bs", "palm", _FINGER_BASES[prefix], _BASE_QUAT, f"{prefix}_mcp", 0.044),
        Link(f"{prefix}_px", f"{prefix}_bs", (-0.0122, 0.0381, 0.0145), (0.5, -0.5, -0.5, 0.5), f"{prefix}_abd", 0.032),
        Link(f"{prefix}_md", f"{prefix}_px", (0.015, 0.0143, -0.013), (0.5, 0.5, -0.5, 0.5), f"{prefix}_pip", 0.037),
        Link(f"{prefix}_ds", f"{prefix}_md", (0.0, -0.0361, 0.0002), (1.0, 0.0, 0.0, 0.0), f"{prefix}_dip", 0.016),
    ]


#: The chain, parents before children; chain order of the joints = MJCF joint order.
LINKS: tuple[Link, ...] = tuple(
    _finger("if") + _finger("mf") + _finger("rf") + [
        Link("th_mp", "palm", (-0.0693, -0.0012, -0.0216), (0.7071068, 0.0, 0.7071068, 0.0), "th_cmc", 0.032),
        Link("th_bs", "th_mp", (0.0, 0.0143, -0.013), (0.5, 0.5, -0.5, 0.5), "th_axl", 0.003),
        Link("th_px", "th_bs", (0.0, 0.0145, -0.017), (0.7071068, -0.7071068, 0.0, 0.0), "th_mcp", 0.038),
        Link("th_ds", "th_px", (0.0, 0.0466, 0.0002), (0.0, 0.0, 0.0, 1.0), "th_ipl", 0.049),
    ]
)

PALM_MASS = 0.237  # kg
HINGE_AXIS = (0.0, 0.0, -1.0)

#: Fingertip sites (m, in the distal body), order index, middle, ring, thumb.
FINGERTIP_BODIES = ("if_ds", "mf_ds", "rf_ds", "th_ds")
FINGERTIP_SITES = ("if_tip", "mf_tip", "rf_tip", "th_tip")
FINGERTIP_POS = {"if_ds": (0.0, -0.05, 0.015), "mf_ds": (0.0, -0.05, 0.015), "rf_ds": (0.0, -0.05, 0.015),
                 "th_ds": (0.0, -0.06, -0.015)}
#: Fingertip collision boxes: centre and half sizes (m).
TIP_BOX = {"finger": ((0.0, -0.0336, 0.0145), (0.01, 0.012, 0.016)),
           "thumb": ((0.0, -0.0456, -0.0145), (0.01, 0.012, 0.016))}

#: Palm collision: boxes in the palm frame (centre, half sizes), m. The palm plate spans the finger
#: bases (y -0.09..0.04) and reaches back past the thumb base (x -0.1..0.0); its face toward the
#: fingers' closing side (-z) sits below the finger bases.
PALM_BOXES = (
    ((-0.045, -0.0225, -0.020), (0.051, 0.0585, 0.0125)),
)

#: Where an object is put before the fingers close (palm frame, m): on the closing side (-z), under
#: the centroid of the canonical fingertips (which stand ~0.13 m off the palm), 5 cm off the palm face.
GRASP_SPOT = np.array([-0.005, -0.036, -0.08])

LINK_RADIUS = 0.0095  # m, capsule radius of the link collision


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _children(body: str) -> list[Link]:
    return [link for link in LINKS if link.parent == body]


def _link_geoms(link: Link, indent: str) -> list[str]:
    """Collision and visual primitives of one link, in its own frame."""
    lines = []
    kids = _children(link.body)
    cls = "thumb" if link.body.startswith("th") else "finger"
    if link.body.endswith("_ds"):
        centre, half = TIP_BOX[cls]
        lines.append(f'{indent}<geom name="{link.body}_tip" class="tip" type="box" pos="{_fmt(centre)}" size="{_fmt(half)}"/>')
        tip = np.array(FINGERTIP_POS[link.body])
        lines.append(f'{indent}<geom name="{link.body}_link" type="capsule" fromto="0 0 0 {_fmt(0.45 * tip)}" size="{LINK_RADIUS}"/>')
        lines.append(f'{indent}<site name="{FINGERTIP_SITES[FINGERTIP_BODIES.index(link.body)]}" pos="{_fmt(tip)}" size="0.004" rgba="1 0.2 0.2 1"/>')
    for kid in kids:
        end = np.array(kid.pos)
        if np.linalg.norm(end) > 1e-3:
            lines.append(f'{indent}<geom name="{link.body}_to_{kid.body}" type="capsule" fromto="0 0 0 {_fmt(end)}" size="{LINK_RADIUS}"/>')
    return lines


def _inertial(link: Link, mass_scale: float = 1.0) -> str:
    """Mass (times mass_scale) at the middle of the link (towards its child or tip), inertia of a 2 cm rod of
    that length."""
    kids = _children(link.body)
    end = np.array(FINGERTIP_POS[link.body]) if not kids else np.mean([np.array(k.pos) for k in kids], axis=0)
    centre = 0.5 * end
    length = max(float(np.linalg.norm(end)), 0.02)
    m = link.mass * float(mass_scale)
    across = m * (length**2 / 12.0 + 0.01**2 / 4.0)
    along = m * 0.01**2 / 2.0
    return f'<inertial pos="{_fmt(centre)}" mass="{m:.6g}" diaginertia="{_fmt((across, across, along + 1e-7))}"/>'


def _body_xml(link: Link, depth: int, mass_scale: np.ndarray) -> list[str]:
    ind = "  " * depth
    motor = hand.JOINT_NAMES.index(link.joint)
    lo, hi = hand.LOWER[motor], hand.UPPER[motor]
    lines = [
        f'{ind}<body name="{link.body}" pos="{_fmt(link.pos)}" quat="{_fmt(link.quat)}">',
        f"{ind}  {_inertial(link, mass_scale[motor])}",
        f'{ind}  <joint name="{link.joint}" class="hand_joint" axis="{_fmt(HINGE_AXIS)}" range="{lo:.6g} {hi:.6g}"/>',
    ]
    lines += _link_geoms(link, ind + "  ")
    for kid in _children(link.body):
        lines += _body_xml(kid, depth + 1, mass_scale)
    lines.append(f"{ind}</body>")
    return lines


def hand_body_xml(pos=(0.0, 0.0, 0.0), quat_wxyz=(1.0, 0.0, 0.0, 0.0), depth: int = 2, link_mass_scale=None) -> str:
    """The `palm` body and its subtree, welded to its parent at pos (m) / quat (w x y z); link_mass_scale
    ([16], motor-ID order, default ones) multiplies the mass and inertia of the link each joint moves."""
    scale = np.ones(hand.NUM_JOINTS) if link_mass_scale is None else np.asarray(link_mass_scale, dtype=float)
    ind = "  " * depth
    lines = [
        f'{ind}<body name="palm" pos="{_fmt(pos)}" quat="{_fmt(quat_wxyz)}" childclass="hand">',
        f'{ind}  <inertial pos="-0.045 -0.0225 -0.01" mass="{PALM_MASS}" diaginertia="0.0004 0.0003 0.0006"/>',
        f'{ind}  <site name="palm_centre" pos="{_fmt(GRASP_SPOT)}" size="0.003" rgba="0.2 0.2 1 0.5"/>',
    ]
    for i, (centre, half) in enumerate(PALM_BOXES):
        lines.append(f'{ind}  <geom name="palm_{i}" class="palm" type="box" pos="{_fmt(centre)}" size="{_fmt(half)}"/>')
    for link in _children("palm"):
        lines += _body_xml(link, depth + 1, scale)
    lines.append(f"{ind}</body>")
    return "\n".join(lines)


def link_body_of_joint(joint: str) -> str:
    """The body a joint moves (the link it is declared in), e.g. 'if_dip' -> 'if_ds'."""
    for link in LINKS:
        if link.joint == joint:
            return link.body
    raise ValueError(f"unknown joint {joint!r}; joints are {', '.join(hand.JOINT_NAMES)}")


def chain_joint_names() -> tuple[str, ...]:
    """Joint names in MJCF (tree) order; equals JOINT_NAMES permuted by hand.MJCF_CHAIN_TO_MOTOR."""
    return tuple(link.joint for link in LINKS)
