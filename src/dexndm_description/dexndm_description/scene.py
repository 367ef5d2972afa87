"""MJCF scenes: the LEAP hand welded to the world under a wrist orientation, plus an object or the Chaos Box.

Scenes: `hand_only`, `grasp` (one free object between the fingers) and `chaos_box` (an open container
of light soft balls around the hand). World coordinates are z up, gravity along -z; the palm frame
sits at `HAND_ORIGIN` with the wrist orientation. Collision groups: the hand and the static world
never collide with themselves; the object touches the hand and the world; balls touch everything.
"""
from __future__ import annotations

import functools

import mujoco
import numpy as np

from dexndm_description import hand, mjcf
from dexndm_description.objects import ObjectSpec, unit_inertia
from dexndm_description.worlds import SCENES, WorldConfig
HAND_ORIGIN = np.array([0.0, 0.0, 0.45])  # m, world position of the palm frame

# Chaos Box: an open box of soft light balls around the hand (m, kg).
BOX_MARGIN = 0.02  # free space between the hand's bounding box and the walls
BOX_FLOOR_GAP = 0.01  # floor this far under the lowest point of the hand
BOX_WALL_ABOVE = 0.04  # walls reach this far above the hand's top
NUM_BALLS = 60
BALL_RADIUS = 0.024
BALL_MASS = 0.008
BALL_SOLREF = (0.05, 0.4)  # soft: long time constant, under-damped
BALL_SOLIMP = (0.6, 0.9, 0.01, 0.5, 2.0)

# contype / conaffinity bits
_HAND = (1, 2)
_STATIC = (1, 2)
_OBJECT = (2, 1)
_BALL = (2, 3)


#: Finger-finger collision pairs (geom names): thumb distal against index and middle distal, and
#: neighbouring fingertips. The hand's own geoms do not collide otherwise (contype/conaffinity).
SELF_COLLISION_PAIRS: tuple[tuple[str, str], ...] = tuple(
    [(t, f) for t in ("th_ds_tip", "th_ds_link") for f in ("if_ds_tip", "if_ds_link", "mf_ds_tip", "mf_ds_link")]
    + [("if_ds_tip", "mf_ds_tip"), ("mf_ds_tip", "rf_ds_tip"), ("if_ds_link", "mf_ds_link"), ("mf_ds_link", "rf_ds_link")]
)


def _self_collision(cfg: WorldConfig) -> str:
    if not cfg.self_collision:
        return ""
    pairs = "\n".join(f'    <pair geom1="{a}" geom2="{b}" condim="3"/>' for a, b in SELF_COLLISION_PAIRS)
    return f"  <contact>\n{pairs}\n  </contact>"


def _sensors() -> str:
    """Fingertip positions as sensors, so batched rollouts return them without Python per world."""
    sites = "\n".join(f'    <framepos name="{s}_pos" objtype="site" objname="{s}"/>' for s in mjcf.FINGERTIP_SITES)
    return f"  <sensor>\n{sites}\n  </sensor>"


def xyzw_to_wxyz(q) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def wxyz_to_xyzw(q) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in np.ravel(values))


def _defaults(cfg: WorldConfig) -> str:
    return f"""  <default>
    <default class="hand">
      <joint armature="{cfg.armature:.6g}" damping="{cfg.damping:.6g}" frictionloss="{cfg.frictionloss:.6g}"/>
      <geom contype="{_HAND[0]}" conaffinity="{_HAND[1]}" condim="{cfg.condim}"
            friction="{cfg.hand_friction:.6g} {cfg.torsional_friction:.6g} 0.0001"
            solref="{_fmt(cfg.solref)}" solimp="{_fmt(cfg.solimp)}" rgba="0.25 0.25 0.28 1" group="1"/>
      <site group="4"/>
      <default class="hand_joint"/>
      <default class="tip"><geom rgba="0.92 0.92 0.9 1"/></default>
      <default class="palm"><geom rgba="0.2 0.2 0.22 1"/></default>
    </default>
    <default class="static">
      <geom contype="{_STATIC[0]}" conaffinity="{_STATIC[1]}" condim="3" friction="1 0.005 0.0001" rgba="0.6 0.55 0.45 1"/>
    </default>
  </default>"""


def _actuators(cfg: WorldConfig) -> str:
    lines = ["  <actuator>"]
    for i, name in enumerate(hand.JOINT_NAMES):
        if cfg.actuation == "pd_torque":
            lines.append(
                f'    <position name="{name}" joint="{name}" kp="{cfg.pd_kp[i]:.6g}" kv="{cfg.pd_kd[i]:.6g}" '
                f'ctrlrange="{hand.LOWER[i]:.6g} {hand.UPPER[i]:.6g}" forcerange="{-cfg.torque_limit:.6g} {cfg.torque_limit:.6g}"/>'
            )
        else:  # servo: ctrl is the output torque (N m) computed by the servo model each physics step
            lines.append(
                f'    <motor name="{name}" joint="{name}" ctrlrange="{-cfg.stall_torque:.6g} {cfg.stall_torque:.6g}"/>'
            )
    lines.append("  </actuator>")
    return "\n".join(lines)


def _object_xml(spec: ObjectSpec, cfg: WorldConfig, pos, quat_wxyz) -> tuple[str, str]:
    """(asset xml, body xml) of the free object."""
    friction = spec.friction * cfg.friction_scale
    common = (f'contype="{_OBJECT[0]}" conaffinity="{_OBJECT[1]}" priority="1" condim="{cfg.condim}" '
              f'friction="{friction:.6g} {cfg.torsional_friction:.6g} 0.0001" solref="{_fmt(cfg.solref)}" '
              f'solimp="{_fmt(cfg.solimp)}" rgba="0.85 0.45 0.15 1" group="2"')
    half = 0.5 * spec.extents
    asset = ""
    if spec.kind == "cylinder":
        geom = f'<geom name="object" type="cylinder" size="{half[0]:.6g} {half[1]:.6g}" quat="0.7071068 -0.7071068 0 0" {common}/>'
    elif spec.kind == "box":
        geom = f'<geom name="object" type="box" size="{_fmt(half)}" {common}/>'
    else:
        asset = f'    <mesh name="object_mesh" vertex="{_fmt(spec.vertices)}"/>'
        geom = f'<geom name="object" type="mesh" mesh="object_mesh" {common}/>'
    inertia = spec.mass * unit_inertia(spec)
    body = f"""    <body name="object" pos="{_fmt(pos)}" quat="{_fmt(quat_wxyz)}" simple="false">
      <freejoint name="object"/>
      <inertial pos="{_fmt(spec.com)}" mass="{spec.mass:.6g}" diaginertia="{_fmt(inertia)}"/>
      {geom}
    </body>"""
    return asset, body


def hand_model(quat_xyzw=(0.0, 0.0, 0.0, 1.0)) -> mujoco.MjModel:
    """The bare hand (no world, no actuators): the `palm` body at the origin turned by quat_xyzw.

    The same body tree, collision geoms and colours as every scene; with the default identity the
    model's world frame is the palm frame (viewers place it by forward kinematics).
    """
    xml = f"""<mujoco><compiler angle="radian" autolimits="true"/>{_defaults(WorldConfig.source())}<worldbody>
{mjcf.hand_body_xml(quat_wxyz=xyzw_to_wxyz(quat_xyzw))}</worldbody></mujoco>"""
    return mujoco.MjModel.from_xml_string(xml)


@functools.lru_cache(maxsize=64)
def hand_bounds(quat_xyzw: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """World-axis bounding box (min, max, m, relative to the palm origin) of the hand's geoms in the
    canonical pose under wrist orientation quat_xyzw."""
    model = hand_model(quat_xyzw)
    data = mujoco.MjData(model)
    for i, name in enumerate(hand.JOINT_NAMES):
        data.qpos[model.jnt_qposadr[model.joint(name).id]] = hand.CANONICAL_POSE[i]
    mujoco.mj_forward(model, data)
    reach = model.geom_rbound[:, None]
    return (data.geom_xpos - reach).min(axis=0), (data.geom_xpos + reach).max(axis=0)


def _chaos_box_xml(quat_xyzw, rng: np.random.Generator) -> str:
    """Container walls around the hand's bounding box, floor just under it, balls filling it from the floor."""
    low, high = hand_bounds(tuple(float(v) for v in np.round(quat_xyzw, 9)))
    low, high = low + HAND_ORIGIN, high + HAND_ORIGIN
    cx, cy = 0.5 * (low[:2] + high[:2])
    wx, wy = 0.5 * (high[:2] - low[:2]) + BOX_MARGIN
    floor_z = low[2] - BOX_FLOOR_GAP
    h, t = high[2] + BOX_WALL_ABOVE - floor_z, 0.01
    lines = [f'    <body name="chaos_box" pos="{cx:.6g} {cy:.6g} {floor_z:.6g}">',
             f'      <geom name="box_floor" class="static" type="box" pos="0 0 {-t:.6g}" size="{wx + t:.6g} {wy + t:.6g} {t}"/>']
    for k, (x, y, sx, sy) in enumerate(((wx + t, 0, t, wy), (-wx - t, 0, t, wy), (0, wy + t, wx + 2 * t, t), (0, -wy - t, wx + 2 * t, t))):
        lines.append(f'      <geom name="box_wall_{k}" class="static" type="box" pos="{x:.6g} {y:.6g} {h / 2:.6g}" '
                     f'size="{sx:.6g} {sy:.6g} {h / 2:.6g}" rgba="0.6 0.55 0.45 0.2"/>')
    lines.append("    </body>")
    pitch = 2.1 * BALL_RADIUS
    nx, ny = int(2 * wx // pitch), int(2 * wy // pitch)
    for b in range(NUM_BALLS):
        layer, cell = divmod(b, nx * ny)
        ix, iy = divmod(cell, ny)
        x = cx - wx + BALL_RADIUS + ix * pitch + rng.uniform(-0.002, 0.002)
        y = cy - wy + BALL_RADIUS + iy * pitch + rng.uniform(-0.002, 0.002)
        z = floor_z + BALL_RADIUS * 1.05 + layer * pitch
        lines.append(
            f'    <body name="ball_{b}" pos="{x:.6g} {y:.6g} {z:.6g}"><freejoint/>'
            f'<geom type="sphere" size="{BALL_RADIUS}" mass="{BALL_MASS}" contype="{_BALL[0]}" conaffinity="{_BALL[1]}" '
            f'condim="3" friction="0.6 0.005 0.0001" solref="{_fmt(BALL_SOLREF)}" solimp="{_fmt(BALL_SOLIMP)}" '
            f'rgba="{0.3 + 0.6 * ((b * 37) % 10) / 10:.3g} 0.5 {0.9 - 0.6 * ((b * 53) % 10) / 10:.3g} 1" group="2"/></body>'
        )
    return "\n".join(lines)


def object_start_pose(quat_xyzw) -> tuple[np.ndarray, np.ndarray]:
    """World position (m) and quaternion (w x y z) of the object before the grasp settles: the grasp
    spot in the palm frame, object axes aligned with the palm axes."""
    quat_wxyz = xyzw_to_wxyz(quat_xyzw)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, quat_wxyz)
    return HAND_ORIGIN + rot.reshape(3, 3) @ mjcf.GRASP_SPOT, quat_wxyz


def scene_xml(cfg: WorldConfig, scene: str, wrist_xyzw, obj: ObjectSpec | None = None,
              rng: np.random.Generator | None = None) -> str:
    """The whole MJCF of one world: hand under `wrist_xyzw`, and the object or Chaos Box."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")
    wrist_wxyz = xyzw_to_wxyz(wrist_xyzw)
    asset, body = "", ""
    if scene == "grasp":
        if obj is None:
            raise ValueError("the grasp scene needs an object; use scene='hand_only' for none")
        pos, quat = object_start_pose(wrist_xyzw)
        asset, body = _object_xml(obj, cfg, pos, quat)
    elif scene == "chaos_box":
        body = _chaos_box_xml(wrist_xyzw, rng if rng is not None else np.random.default_rng(0))
    return f"""<mujoco model="leap_hand_{scene}_{cfg.name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{cfg.timestep:.9g}" integrator="implicitfast" gravity="0 0 {-cfg.gravity:.6g}" cone="pyramidal"/>
  <size memory="8M"/>
  <visual><global offwidth="640" offheight="480"/><quality shadowsize="2048"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.4 0.4 0.4"/></visual>
{_defaults(cfg)}
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.85 0.85 0.85" rgb2="0.75 0.75 0.78" width="256" height="256"/>
    <material name="grid" texture="grid" texrepeat="8 8"/>
{asset}
  </asset>
  <worldbody>
    <light pos="0.3 -0.4 1.3" dir="-0.3 0.4 -1" diffuse="0.8 0.8 0.8"/>
    <light pos="-0.5 0.5 1.0" dir="0.5 -0.5 -1" diffuse="0.3 0.3 0.3" castshadow="false"/>
    <geom name="floor" class="static" type="plane" size="1 1 0.05" material="grid"/>
{mjcf.hand_body_xml(pos=HAND_ORIGIN, quat_wxyz=wrist_wxyz, link_mass_scale=cfg.link_mass_scale)}
{body}
  </worldbody>
{_self_collision(cfg)}
{_actuators(cfg)}
{_sensors()}
</mujoco>
"""
