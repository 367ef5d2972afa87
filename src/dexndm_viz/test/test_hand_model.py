"""The viewer's hand is the simulation's hand: same links, same geoms, same forward kinematics."""
import mujoco
import numpy as np

from dexndm_description import hand, scene
from dexndm_description.wrist import parse_wrist, quat_to_matrix
from dexndm_description.worlds import WorldConfig
from dexndm_viz.hand_model import HandGeometry


def test_link_poses_match_the_simulated_scene_in_the_palm_frame():
    geometry = HandGeometry()
    wrist = parse_wrist("thumb_up")
    model = mujoco.MjModel.from_xml_string(scene.scene_xml(WorldConfig.target(), "hand_only", wrist))
    data = mujoco.MjData(model)
    rot = quat_to_matrix(wrist)
    rng = np.random.default_rng(3)
    for _ in range(5):
        q = rng.uniform(hand.LOWER, hand.UPPER)
        for i, name in enumerate(hand.JOINT_NAMES):
            data.qpos[model.jnt_qposadr[model.joint(name).id]] = q[i]
        mujoco.mj_kinematics(model, data)
        pos, quat = geometry.link_poses(q)
        for k, link in enumerate(geometry.links):
            body = model.body(link).id
            expected = rot.T @ (data.xpos[body] - scene.HAND_ORIGIN)  # world -> palm frame
            assert np.allclose(pos[k], expected, atol=1e-9), link
            assert np.allclose(quat_to_matrix(quat[k]), rot.T @ data.xmat[body].reshape(3, 3), atol=1e-9), link


def test_every_collision_geom_is_drawn_and_each_motor_moves_only_its_own_chain():
    geometry = HandGeometry()
    assert geometry.links[0] == "palm" and len(geometry.links) == 17
    assert sum(len(g) for g in geometry.geoms.values()) == geometry.model.ngeom
    assert {g.kind for gs in geometry.geoms.values() for g in gs} == {"box", "capsule"}
    base_pos, base_quat = geometry.link_poses(hand.CANONICAL_POSE)
    for motor, name in enumerate(hand.JOINT_NAMES):
        q = hand.CANONICAL_POSE.copy()
        q[motor] += 0.3
        pos, quat = geometry.link_poses(q)
        change = np.linalg.norm(pos - base_pos, axis=1) + np.linalg.norm(np.abs(quat) - np.abs(base_quat), axis=1)
        moved = {geometry.links[k] for k in np.flatnonzero(change > 1e-6)}
        assert moved and all(link.startswith(name[:2]) for link in moved), (name, moved)  # same finger only
    pos, quat = geometry.batch_link_poses(np.stack([hand.CANONICAL_POSE, hand.OPEN_POSE]))
    assert pos.shape == (2, 17, 3) and quat.shape == (2, 17, 4) and np.allclose(pos[0], base_pos)
