"""The MuJoCo hand: kinematics against LEAP_HAND.md, joint table, batched API, grasp hold, determinism."""
import numpy as np
import pytest

from dexndm_description import hand, mjcf, scene
from dexndm_description.sim import BatchedHandSim

# LEAP_HAND.md's kinematic table, typed again here so the check is independent of mjcf.py:
# body: (parent, pos, quat w x y z)
_TABLE = {
    "if_bs": ("palm", (-0.007, 0.023, -0.0187), (0.5, 0.5, 0.5, -0.5)),
    "if_px": ("if_bs", (-0.0122, 0.0381, 0.0145), (0.5, -0.5, -0.5, 0.5)),
    "if_md": ("if_px", (0.015, 0.0143, -0.013), (0.5, 0.5, -0.5, 0.5)),
    "if_ds": ("if_md", (0.0, -0.0361, 0.0002), (1.0, 0.0, 0.0, 0.0)),
    "th_mp": ("palm", (-0.0693, -0.0012, -0.0216), (0.7071, 0.0, 0.7071, 0.0)),
    "th_bs": ("th_mp", (0.0, 0.0143, -0.013), (0.5, 0.5, -0.5, 0.5)),
    "th_px": ("th_bs", (0.0, 0.0145, -0.017), (0.7071, -0.7071, 0.0, 0.0)),
    "th_ds": ("th_px", (0.0, 0.0466, 0.0002), (0.0, 0.0, 0.0, 1.0)),
}
_BASES = {"if": (-0.007, 0.023, -0.0187), "mf": (-0.0071, -0.0224, -0.0187), "rf": (-0.00709, -0.0678, -0.0187)}


def _rot(q):
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _tip_in_palm(finger: str) -> np.ndarray:
    """Compose the table's transforms from palm to the fingertip site at q = 0."""
    prefix = "th" if finger == "th" else "if"
    chain = [f"{prefix}_{b}" for b in (("mp", "bs", "px", "ds") if prefix == "th" else ("bs", "px", "md", "ds"))]
    rot, pos = np.eye(3), np.zeros(3)
    for body in chain:
        _, p, q = _TABLE[body]
        if body == "if_bs":
            p = _BASES[finger]
        pos = pos + rot @ np.array(p)
        rot = rot @ _rot(q)
    site = (0.0, -0.06, -0.015) if prefix == "th" else (0.0, -0.05, 0.015)
    return pos + rot @ np.array(site)


@pytest.fixture(scope="module")
def hand_only():
    sim = BatchedHandSim(num_envs=1, scene="hand_only", wrist="palm_down", object=None, threads=1)
    yield sim
    sim.close()


def test_fingertips_at_zero_match_the_leap_table(hand_only):
    hand_only.reset(q=np.zeros(16))
    tips = hand_only.fingertip_pos[0] - scene.HAND_ORIGIN  # palm_down: palm frame = world axes
    expected = np.stack([_tip_in_palm(f) for f in ("if", "mf", "rf", "th")])
    assert np.abs(tips - expected).max() < 0.002
    assert tips[0, 0] > 0.1 and tips[3, 1] > 0.1  # fingers along +x, thumb along +y


def test_joint_limits_and_order_equal_the_table(hand_only):
    m = hand_only.models[0]
    for i, name in enumerate(hand.JOINT_NAMES):
        j = m.joint(name)
        np.testing.assert_allclose(m.jnt_range[j.id], [hand.LOWER[i], hand.UPPER[i]], atol=1e-6)
        assert m.actuator(i).name == name  # actuators (ctrl) are in motor-ID order
        np.testing.assert_allclose(m.jnt_axis[j.id], [0, 0, -1])
    chain = [m.joint(k).name for k in range(16)]
    assert chain == list(mjcf.chain_joint_names())
    assert [hand.JOINT_NAMES.index(n) for n in chain] == list(hand.MJCF_CHAIN_TO_MOTOR)
    assert m.body_subtreemass[m.body("palm").id] == pytest.approx(0.746, abs=1e-3)


def test_q_and_targets_speak_motor_id_order(hand_only):
    q = hand.MID.copy()
    q[0], q[1] = 0.4, 1.2  # if_abd, if_mcp: differ so a chain-order mix-up shows
    hand_only.reset(q=q)
    np.testing.assert_allclose(hand_only.q[0], q, atol=1e-9)
    m, d = hand_only.models[0], hand_only.datas[0]
    assert d.qpos[m.jnt_qposadr[m.joint("if_abd").id]] == pytest.approx(0.4)


def test_api_shapes_and_clipping():
    sim = BatchedHandSim(num_envs=3, world="target", wrist="thumb_up", object="normal_cuboid", seed=3, threads=2)
    try:
        applied = sim.set_targets(np.full((3, 16), 5.0))
        np.testing.assert_allclose(applied, np.tile(hand.UPPER, (3, 1)))
        sim.step()
        assert sim.q.shape == sim.qdot.shape == sim.joint_effort.shape == (3, 16)
        assert sim.object_pose.shape == (3, 7) and sim.object_linvel.shape == sim.object_angvel.shape == (3, 3)
        np.testing.assert_allclose(np.linalg.norm(sim.object_pose[:, 3:], axis=1), 1.0, atol=1e-9)
        assert sim.fingertip_pos.shape == (3, 4, 3) and sim.wrist_quat.shape == (3, 4)
        np.testing.assert_allclose(sim.time, 0.05)
        assert sim.object_fallen().shape == (3,) and sim.object_fallen().dtype == bool
        assert np.abs(sim.joint_effort).max() <= sim.config.current_limit + 1e-12  # amps in the target world
        sim.reset(env_ids=[1])
        np.testing.assert_allclose(sim.time, [0.05, 0.0, 0.05])
        with pytest.raises(ValueError, match="NaN"):
            sim.set_targets(np.full(16, np.nan))
        with pytest.raises(ValueError, match="shape"):
            sim.set_targets(np.zeros((3, 15)))
        with pytest.raises(ValueError, match="env ids"):
            sim.reset(env_ids=[7])
    finally:
        sim.close()


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="object set"):
        BatchedHandSim(object="banana")
    with pytest.raises(ValueError, match="world"):
        BatchedHandSim(world="moon")
    with pytest.raises(ValueError, match="palm_up"):
        BatchedHandSim(scene="chaos_box", wrist="palm_up", object=None)


def _rollout(seed, threads, ticks=15):
    sim = BatchedHandSim(num_envs=3, world="target", wrist="base_up", object="irregular", seed=seed, threads=threads)
    rng = np.random.default_rng(123)
    try:
        for _ in range(ticks):
            sim.set_targets(hand.CANONICAL_POSE + rng.normal(0, 0.05, size=(3, 16)))
            sim.step()
        return sim.q, sim.object_pose
    finally:
        sim.close()


def test_same_seed_same_trajectory_whatever_the_threads():
    q1, p1 = _rollout(seed=5, threads=2)
    q2, p2 = _rollout(seed=5, threads=1)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(p1, p2)
    q3, _ = _rollout(seed=6, threads=2)
    assert np.abs(q3 - q1).max() > 1e-6


def test_hand_holds_a_cylinder_palm_up_for_ten_seconds():
    """The canonical grasp cages the cylinder: it stays on the palm, inside the fingers, for 10 s."""
    sim = BatchedHandSim(num_envs=1, world="source", wrist="palm_up", object="normal_cylinder", randomize=False, threads=1)
    try:
        start = sim.object_pose[0, :3]
        for _ in range(200):  # 10 s at 20 Hz
            sim.step()
            assert not sim.object_fallen()[0]
        end = sim.object_pose[0, :3]
        tips = sim.fingertip_pos[0]
        assert np.linalg.norm(end - start) < 0.03
        assert scene.HAND_ORIGIN[2] + 0.03 < end[2] < tips[:, 2].max()  # above the palm face, below the tips
        (cx, cy, _), (hx, hy, _) = mjcf.PALM_BOXES[0]
        assert abs(end[0] - cx) < hx and abs(-end[1] - cy) < hy  # over the palm (palm up: y flips)
        assert np.linalg.norm(sim.object_linvel[0]) < 0.02
    finally:
        sim.close()


def test_per_world_wrists_forces_and_contacts():
    sim = BatchedHandSim(num_envs=2, wrist=["palm_up", "thumb_down"], object="normal_cuboid", randomize=False, threads=2)
    try:
        np.testing.assert_allclose(sim.wrist_quat[0], [1, 0, 0, 0])
        pos, spot = sim.object_pose[:, :3], sim.grasp_spot
        assert np.linalg.norm(spot[0] - spot[1]) > 0.05  # the two hands really differ
        assert np.linalg.norm(pos - spot, axis=1).max() < 0.1  # each object is in its own hand
        assert np.all(np.linalg.norm(pos - spot, axis=1) < np.linalg.norm(pos - spot[::-1], axis=1))
        assert sim.fingertip_contacts().shape == (2, 4) and sim.fingertip_contacts().any()
        sim.set_object_force([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])  # 3 N up against ~0.3 N of weight
        for _ in range(10):
            sim.step()
        assert sim.object_fallen()[0] and sim.object_pose[0, 2] > sim.grasp_spot[0, 2]
    finally:
        sim.close()


def test_world_config_variants_and_validation():
    from dexndm_description.worlds import WorldConfig

    target = WorldConfig.target()
    plain = target.replace(backlash=0.0, delay_substeps=0)
    assert plain.backlash == 0.0 and plain.current_limit == target.current_limit and target.backlash > 0
    assert WorldConfig.source().servo_stiffness()[1] == pytest.approx(2.11, abs=0.01)  # N m/rad at P = 800
    with pytest.raises(ValueError, match="delay_substeps"):
        target.replace(delay_substeps=6)
    with pytest.raises(ValueError, match="16 values"):
        target.replace(pd_kp=np.ones(15))
    sim = BatchedHandSim(num_envs=1, world=plain, scene="hand_only", object=None, threads=1)
    assert sim.config.name == "target" and sim.config.delay_substeps == 0
    sim.close()


def test_link_mass_scale_scales_the_link_each_joint_moves():
    from dexndm_description.worlds import WorldConfig

    scale = np.ones(16)
    scale[3], scale[12] = 2.0, 0.5  # if_dip moves if_ds, th_cmc moves th_mp
    nominal = BatchedHandSim(num_envs=1, world="source", scene="hand_only", object=None, threads=1).models[0]
    heavy = BatchedHandSim(num_envs=1, world=WorldConfig.source().replace(link_mass_scale=scale),
                           scene="hand_only", object=None, threads=1).models[0]
    for body, factor in (("if_ds", 2.0), ("th_mp", 0.5), ("if_md", 1.0), ("palm", 1.0)):
        assert heavy.body(body).mass[0] == pytest.approx(factor * nominal.body(body).mass[0])
    assert heavy.body("if_ds").inertia[0] == pytest.approx(2.0 * nominal.body("if_ds").inertia[0], rel=1e-4)
    assert mjcf.link_body_of_joint("if_dip") == "if_ds" and mjcf.link_body_of_joint("if_mcp") == "if_bs"
    with pytest.raises(ValueError, match="positive"):
        WorldConfig.source().replace(link_mass_scale=-scale)


def test_resetting_a_subset_restores_those_worlds_exactly():
    sim = BatchedHandSim(num_envs=3, world="source", object="normal_cylinder", randomize=False, seed=2, threads=2)
    try:
        first = sim.object_pose.copy(), sim.q.copy()
        sim.set_targets(hand.OPEN_POSE)
        for _ in range(5):
            sim.step()
        sim.reset(env_ids=[0, 2])
        np.testing.assert_array_equal(sim.object_pose[[0, 2]], first[0][[0, 2]])
        np.testing.assert_array_equal(sim.q[[0, 2]], first[1][[0, 2]])
        assert np.abs(sim.q[1] - first[1][1]).max() > 0.05  # world 1 kept its opened fingers
    finally:
        sim.close()


@pytest.mark.parametrize("world", ["source", "target"])
def test_every_sets_nominal_object_stays_in_the_hand_palm_up(world):
    from dexndm_description import objects

    for name in objects.OBJECT_SETS:
        sim = BatchedHandSim(num_envs=1, world=world, wrist="palm_up", object=name, randomize=False, threads=1)
        try:
            for _ in range(200):
                sim.step()
            assert not sim.object_fallen()[0], f"{name} left the hand in the {world} world"
        finally:
            sim.close()


@pytest.mark.parametrize("obj", ["normal_cuboid", "normal_cylinder", "irregular"])
def test_source_ticks_match_stepping_each_world(obj):
    """The source world steps all worlds together: on one shared model with per-world fields where the worlds'
    models differ only in numbers (a batch that keeps each world's warm start: the same trajectory as mj_step
    on each world's own model), by mujoco.rollout otherwise (irregular meshes; the warm start is not carried).
    Recording substeps forces the mj_step path. Resets mid-run re-draw an object's physics, and the wrists
    differ, so per-world fields must follow each world's model."""
    wrists = ["palm_up", "palm_down", "thumb_up"]

    def run(trace: bool):
        sim = BatchedHandSim(num_envs=3, world="source", wrist=wrists, object=obj, seed=3, threads=2)
        rng = np.random.default_rng(0)
        sim.set_object_force(np.tile([0.0, 0.05, 0.0], (3, 1)))
        out = []
        for k in range(20):
            if k == 10:
                sim.reset([1])
            if trace:
                sim.substep_trace = [[] for _ in range(3)]
            sim.set_targets(sim.q + rng.uniform(-0.04, 0.04, (3, 16)))
            sim.step()
            out.append(np.concatenate([sim.q.ravel(), sim.qdot.ravel(), sim.object_pose.ravel(), sim.object_angvel.ravel(),
                                       sim.object_linvel.ravel(), sim.joint_effort.ravel(), sim.fingertip_pos.ravel(), sim.time]))
        shared = bool(sim._shared)
        sim.close()
        return np.array(out), shared
    (fast, shared), (stepped, _) = run(False), run(True)
    assert shared == (obj != "irregular")
    assert np.abs(fast - stepped).max() < (1e-9 if shared else 1e-4)
    assert np.abs(fast[0] - stepped[0]).max() < 1e-9  # the first tick starts from the same warm start
    assert np.abs(fast[-1] - fast[0]).max() > 1e-3  # the worlds did move


def test_datas_read_after_rollout_ticks_hold_the_current_state():
    sim = BatchedHandSim(num_envs=2, world="source", object="normal_cuboid", seed=1, threads=2)
    for _ in range(3):
        sim.set_targets(sim.q + 0.02)
        sim.step()
    q = sim.q
    d = sim.datas[1]
    assert np.allclose(d.qpos[sim._qadr], q[1]) and d.time == pytest.approx(sim.time[1])
    sim.set_object_force([0.0, 0.0, 0.1])
    assert np.allclose(sim.datas[0].xfrc_applied[sim._obj_body, :3], [0.0, 0.0, 0.1])
    # a change made through datas is where the next tick starts
    sim.datas[0].qvel[:] = 0.0
    sim.step()
    assert np.all(np.isfinite(sim.q))
    sim.close()


def test_grasp_search_keeps_the_first_candidate_that_holds_and_reset_restores_it():
    """grasp_search (moved out of sim.py): one state per searching world, the one the default reset restores."""
    import mujoco

    from dexndm_description import grasp_search

    sim = BatchedHandSim(num_envs=2, wrist=["palm_up", "palm_down"], object="normal_cylinder", randomize=False, threads=2)
    try:
        goal = np.tile(hand.CANONICAL_POSE, (2, 1))
        found = grasp_search.search(sim, np.array([0, 1]), goal)
        assert sorted(found) == [0, 1]
        for i in (0, 1):
            np.testing.assert_array_equal(found[i], sim._grasps[i])  # the same search reset ran at construction
        only_last = grasp_search.search(sim, np.array([1]), goal)
        np.testing.assert_array_equal(only_last[1], found[1])  # a world's search does not depend on the others
        sim.reset()
        state = np.zeros(mujoco.mj_stateSize(sim.models[0], mujoco.mjtState.mjSTATE_INTEGRATION))
        mujoco.mj_getState(sim.models[0], sim._d(0), state, mujoco.mjtState.mjSTATE_INTEGRATION)
        a = sim._obj_qadr
        # the object sits where the kept grasp put it (the state holds time first, then qpos)
        np.testing.assert_allclose(state[1 + a:1 + a + 3], found[0][1 + a:1 + a + 3], atol=1e-9)
    finally:
        sim.close()


@pytest.mark.parametrize("world", ["source", "target"])
def test_with_stand_cylinders_palm_up_a_cylinder_stands_on_the_palm_and_a_cuboid_lies(world):
    from dexndm_description import grasp_search, wrist as wrists

    assert grasp_search.palm_up(wrists.parse_wrist("palm_up")) and not grasp_search.palm_up(wrists.parse_wrist("thumb_up"))
    cases = [("normal_cylinder", True, None), ("normal_cylinder", True, hand.CANONICAL_POSE)]  # default, explicit
    if world == "source":  # the rotation env's reset (explicit pose); a cuboid lies on the palm
        cases.append(("normal_cuboid", False, hand.CANONICAL_POSE))
    for name, standing, q in cases:
        sim = BatchedHandSim(num_envs=1, world=world, wrist="palm_up", object=name, randomize=False, threads=1,
                             stand_cylinders=True)
        try:
            sim.reset(q=q)
            for _ in range(40):
                sim.step()
            x, y, z, w = sim.object_pose[0, 3:]  # world frame; the object's long axis is its y axis
            long_axis_z = 2 * (y * z + w * x)  # world z component of the turned y axis
            assert (abs(long_axis_z) > 0.95) == standing, (name, q is None, long_axis_z)
            assert not sim.object_fallen()[0]
        finally:
            sim.close()
