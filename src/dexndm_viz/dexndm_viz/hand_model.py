"""The hand's collision geometry placed by forward kinematics, from the MJCF of dexndm_description.

`HandGeometry` compiles `scene.hand_model()` (the bare hand, palm frame = model world frame) once and
answers, for joint angles in motor-ID order (rad), the pose of every link in the palm frame
(`mujoco.mj_kinematics`, ~10 us per pose). Each link's geoms are listed in the link's own frame so a
viewer draws them once and moves only the links. Lengths m, quaternions x y z w (ROS order) out of
this module; MuJoCo's w x y z stays inside.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from dexndm_description import hand
from dexndm_description.scene import hand_model, wxyz_to_xyzw


@dataclass(frozen=True)
class Geom:
    """One collision primitive in its link's frame."""

    name: str
    kind: str  # box | capsule | cylinder | sphere | ellipsoid
    pos: np.ndarray  # [3] m
    quat: np.ndarray  # [4] x y z w
    size: np.ndarray  # MuJoCo size: box half sizes; capsule/cylinder (radius, half length); sphere (radius,)
    rgba: np.ndarray  # [4] 0..1


_KINDS = {mujoco.mjtGeom.mjGEOM_BOX: "box", mujoco.mjtGeom.mjGEOM_CAPSULE: "capsule",
          mujoco.mjtGeom.mjGEOM_CYLINDER: "cylinder", mujoco.mjtGeom.mjGEOM_SPHERE: "sphere",
          mujoco.mjtGeom.mjGEOM_ELLIPSOID: "ellipsoid"}


class HandGeometry:
    """Links (palm first, then the chain's bodies), their geoms, and forward kinematics."""

    def __init__(self):
        self.model = hand_model()
        self.data = mujoco.MjData(self.model)
        m = self.model
        #: Link (body) names in model order, the palm first.
        self.links: tuple[str, ...] = tuple(m.body(b).name for b in range(1, m.nbody))
        self.geoms: dict[str, list[Geom]] = {name: [] for name in self.links}
        for g in range(m.ngeom):
            kind = _KINDS.get(int(m.geom_type[g]))
            if kind is None:
                raise ValueError(f"hand geom {m.geom(g).name!r} has a type the viewer cannot draw ({m.geom_type[g]})")
            self.geoms[m.body(m.geom_bodyid[g]).name].append(Geom(
                m.geom(g).name, kind, m.geom_pos[g].copy(), wxyz_to_xyzw(m.geom_quat[g]), m.geom_size[g].copy(),
                m.geom_rgba[g].copy()))
        # qpos address of each motor: joints are found by name, so chain order never matters here.
        self._qpos_of_motor = np.array([m.jnt_qposadr[m.joint(name).id] for name in hand.JOINT_NAMES])

    def link_poses(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Palm-frame poses of every link for joint angles q [16] (rad, motor-ID order): ([L, 3] m, [L, 4] xyzw)."""
        q = np.asarray(q, dtype=float)
        if q.shape != (hand.NUM_JOINTS,):
            raise ValueError(f"expected {hand.NUM_JOINTS} joint angles, got shape {q.shape}")
        self.data.qpos[self._qpos_of_motor] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.xpos[1:].copy(), wxyz_to_xyzw(self.data.xquat[1:])

    def batch_link_poses(self, qs) -> tuple[np.ndarray, np.ndarray]:
        """link_poses for each row of qs [N, 16]: ([N, L, 3], [N, L, 4])."""
        qs = np.asarray(qs, dtype=float).reshape(-1, hand.NUM_JOINTS)
        pos = np.empty((len(qs), len(self.links), 3))
        quat = np.empty((len(qs), len(self.links), 4))
        for i, q in enumerate(qs):
            pos[i], quat[i] = self.link_poses(q)
        return pos, quat
