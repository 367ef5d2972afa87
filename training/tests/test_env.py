"""The rotation environment on the real source-world simulator: observation groups, actions, episodes."""
import numpy as np
import pytest
import torch

from dexndm_description import hand
from dexndm_policy import observation
from dexndm_training import env as env_module
from dexndm_training import rotations
from dexndm_training.env import EnvConfig, RotationEnv


@pytest.fixture(scope="module")
def env():
    e = RotationEnv(EnvConfig(num_envs=4, episode_steps=6, grasp_candidates=8, threads=1, seed=1,
                              wrists=["palm_up", "thumb_up"], axes=["principal"]))
    yield e
    e.close()


def test_groups_follow_the_generalist_contract_and_the_privileged_layout(env):
    obs = env.reset()
    assert set(obs.keys()) == {"policy", "privileged"}
    policy, privileged = obs["policy"].numpy(), obs["privileged"].numpy()
    observation.check_observation(policy)
    assert privileged.shape == (4, env_module.PRIVILEGED_DIM) and np.all(np.isfinite(privileged))
    hist = policy[:, observation.HISTORY_SLICE].reshape(4, observation.HISTORY, observation.STEP_DIM)
    np.testing.assert_allclose(hist[:, -1, :16], env.sim.q, atol=env.cfg.joint_noise + 1e-6)  # noisy q
    np.testing.assert_allclose(hist[:, -1, 16:], env.sim.q, atol=1e-6)  # a_{-1} = q_0
    np.testing.assert_allclose(policy[:, observation.WRIST_SLICE], env.wrist, atol=1e-6)
    np.testing.assert_allclose(policy[:, observation.AXIS_SLICE], env.axis, atol=1e-6)
    assert env.wrist_labels == ["palm_up", "thumb_up", "palm_up", "thumb_up"]
    principal = np.stack([v for v in env.axis_table])
    assert all(np.any(np.all(np.isclose(a, principal), axis=1)) for a in env.axis)


def test_actions_integrate_into_base_targets_paired_with_the_next_q(env):
    env.reset()
    before = env.previous_target.copy()
    delta = torch.zeros(4, 16)
    delta[:, 1] = 1.0
    delta[:, 2] = 5.0  # clipped to 1
    obs, reward, done, extras = env.step(delta)
    want = hand.clip_to_limits(before + np.where(np.arange(16) < 1, 0, np.where(np.arange(16) <= 2, 1, 0)) / 24.0)
    np.testing.assert_allclose(env.last_step["target"], want, atol=1e-9)
    hist = obs["policy"].numpy()[:, observation.HISTORY_SLICE].reshape(4, observation.HISTORY, observation.STEP_DIM)
    live = ~done.numpy()
    np.testing.assert_allclose(hist[live, -1, 16:], want[live], atol=1e-6)  # (q_{t+1}, a_t)
    assert reward.shape == (4,) and torch.all(torch.isfinite(reward))
    assert "/reward/rotation" in extras["log"] and extras["time_outs"].dtype == torch.bool


def test_episodes_time_out_after_episode_steps_and_restart(env):
    env.reset()
    resets = env.resets
    first_end = np.full(4, -1)
    for t in range(env.cfg.episode_steps):
        _, _, done, extras = env.step(torch.zeros(4, 16))
        done, time_out, fallen = done.numpy(), extras["time_outs"].numpy(), env.last_step["fallen"]
        np.testing.assert_array_equal(time_out, done & ~fallen)  # a fall is a termination, not a time-out
        new = done & (first_end < 0)
        first_end[new] = t
        assert np.all(fallen[new] | (t == env.cfg.episode_steps - 1))
    assert np.all(first_end >= 0)  # every world ended its first episode by the time limit
    assert env.resets >= resets + 4 and torch.all(env.episode_length_buf < env.cfg.episode_steps)


def test_disturbance_force_is_two_times_mass_on_the_object(env):
    env.reset()
    env.cfg.disturbance_probability = 1.0
    _, _, done, _ = env.step(torch.zeros(4, 16))
    live = ~done.numpy()  # worlds that restarted have no force yet
    assert live.any()
    masses = np.array([s.mass for s in env.sim.object_specs])
    np.testing.assert_allclose(np.linalg.norm(env.force[live], axis=1), 2.0 * masses[live], rtol=1e-9)
    bodies = [m.body("object").id for m in env.sim.models]
    applied = np.array([d.xfrc_applied[b, :3] for d, b in zip(env.sim.datas, bodies)])
    np.testing.assert_allclose(applied, env.force)
    env.cfg.disturbance_probability = 0.25


def test_grasp_cache_holds_poses_near_the_canonical_one(env):
    assert len(env.grasps) >= 1
    assert np.all(np.abs(env.grasps - hand.CANONICAL_POSE) <= env.cfg.grasp_noise + 1e-9)


def test_axis_sets_resolve_to_named_unit_axes():
    names, vectors = env_module.resolve_axes(["principal", "diagonal", "general:3"])
    assert len(names) == 6 + 4 + 1 and names[:2] == ["x", "-x"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)
    with pytest.raises(ValueError, match="unknown rotation axis"):
        env_module.resolve_axes(["sideways"])


def test_privileged_blocks_hold_what_the_layout_names(env):
    from dexndm_description import wrist as wrist_table

    env.reset()
    priv = env.get_observations()["privileged"].numpy().astype(float)
    blocks, start = {}, 0
    for name, width in env_module.PRIVILEGED_LAYOUT:
        blocks[name] = priv[:, start : start + width]
        start += width
    np.testing.assert_allclose(blocks["axis"], env.axis, atol=1e-6)
    np.testing.assert_allclose(blocks["wrist"], env.wrist, atol=1e-6)
    for i in range(4):
        np.testing.assert_allclose(blocks["gravity"][i], wrist_table.gravity_in_palm(env.wrist[i]), atol=1e-6)
    np.testing.assert_allclose(blocks["object_params"][:, 0], [s.mass for s in env.sim.object_specs], rtol=1e-6)
    # a fresh waypoint is 90 degrees ahead about the axis: its rotation vector is pi/2 along the world axis
    goal_world = np.array([env_module.rotations.rotate(env.wrist[i], blocks["goal_rotvec"][i]) for i in range(4)])
    np.testing.assert_allclose(goal_world, np.pi / 2 * env.axis_world, atol=1e-5)
    hist = blocks["joint_target_history"].reshape(4, env_module.PRIVILEGED_HISTORY, 32)
    np.testing.assert_allclose(hist[:, -1, :16], env.sim.q, atol=1e-6)  # clean q, no noise


def test_target_mode_steps_toward_the_asked_target_at_the_rate_limit():
    cfg = EnvConfig(num_envs=2, episode_steps=40, grasp_candidates=8, threads=1, seed=2, action_mode="target",
                    target_scale=0.5, disturbance_scale=0.0, terminate_on_fall=False)
    e = RotationEnv(cfg)
    try:
        action = np.zeros((2, 16))
        action[:, 1] = 1.0  # index mcp: canonical + 0.5 rad, 12 steps away at 1/24 rad a step
        action[:, 5] = -3.0  # clipped to -1
        wanted = hand.clip_to_limits(hand.CANONICAL_POSE + 0.5 * np.clip(action, -1, 1))
        previous = e.previous_target.copy()
        for _ in range(20):
            e.step(torch.as_tensor(action, dtype=torch.float32))
            target = e.last_step["target"]
            assert np.all(np.abs(target - previous) <= hand.ACTION_SCALE + 1e-9)  # the contract's rate limit
            previous = target.copy()
        np.testing.assert_allclose(previous, wanted, atol=1e-9)  # reached within 20 steps
    finally:
        e.close()
    with pytest.raises(ValueError, match="action_mode"):
        RotationEnv(EnvConfig(num_envs=1, action_mode="absolute"))


def test_a_target_mode_actor_runs_through_the_contract_like_the_target_mode_env():
    from dexndm_training.ppo import TargetModeActor

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.2, 1.2, size=(15, 2, 16))
    base = dict(num_envs=2, episode_steps=40, grasp_candidates=8, threads=1, seed=4, target_scale=0.4)
    envs = [RotationEnv(EnvConfig(**base, action_mode="target")), RotationEnv(EnvConfig(**base, action_mode="delta"))]
    try:
        for t in range(len(actions)):
            asked = torch.as_tensor(actions[t], dtype=torch.float32)
            envs[0].step(asked)
            envs[1].step(TargetModeActor(lambda obs, a=asked: a, 0.4)(envs[1].get_observations()))
            np.testing.assert_allclose(envs[1].last_step["target"], envs[0].last_step["target"], atol=1e-5)
    finally:
        for e in envs:
            e.close()


def test_gait_residual_mode_adds_the_residual_to_the_gait_and_its_actor_replays_it(tmp_path):
    from dexndm_training import gait
    from dexndm_training.ppo import GaitResidualActor
    from dexndm_training.rollout import rollout

    v = np.zeros(gait.PARAMETERS)
    v[1], v[5], v[48] = 0.3, 0.2, 0.8  # index and middle mcp at 0.8 Hz
    path = tmp_path / "gait.json"
    path.write_text(__import__("json").dumps({"gait": gait.Gait.from_vector(v, ramp_steps=2).__dict__}))
    base = dict(num_envs=2, episode_steps=12, grasp_candidates=8, threads=1, seed=4, disturbance_scale=0.0)
    with pytest.raises(ValueError, match="needs a gait"):
        RotationEnv(EnvConfig(**base, action_mode="gait_residual"))
    residual = np.zeros((2, 16))
    residual[:, 9] = 0.8  # ring mcp, which the gait leaves alone
    asked = torch.as_tensor(residual, dtype=torch.float32)
    mode = RotationEnv(EnvConfig(**base, action_mode="gait_residual", gait=str(path), residual_scale=0.5))
    plain = RotationEnv(EnvConfig(**base))
    try:
        played = rollout(mode, lambda obs: asked)
        replayed = rollout(plain, GaitResidualActor(lambda obs: asked, mode.cfg))
        np.testing.assert_allclose(replayed.target, played.target, atol=1e-9)
        fresh = RotationEnv(EnvConfig(**base))  # the gait alone, from the same draws
        try:
            still = rollout(fresh, gait.GaitPolicy(gait.Gait.load(path)))
        finally:
            fresh.close()
        # the residual's joint moves 1/60 rad a step and stays moved; the gait's joint plays the gait
        np.testing.assert_allclose(played.target[:, :, 9] - played.target[:, :1, 9], np.tile(np.arange(12) / 60, (2, 1)), atol=1e-9)
        np.testing.assert_allclose(played.target[:, :, 1], still.target[:, :, 1], atol=1e-9)
    finally:
        mode.close()
        plain.close()


def test_initial_yaw_turns_the_placed_object_about_the_palm_normal():
    """initial_yaw spreads the cuboid's start orientations about the palm normal (palm up: world z); by
    default it starts aligned with the palm (within the close's settling)."""
    def start_yaws(initial_yaw):
        env = RotationEnv(EnvConfig(num_envs=16, object="normal_cuboid", seed=3, threads=1, grasp_candidates=16,
                                    initial_yaw=initial_yaw))
        try:
            env.reset()
            x = rotations.rotate(env.sim.object_pose[:, 3:], np.tile([1.0, 0.0, 0.0], (16, 1)))
        finally:
            env.close()
        yaw = np.degrees(np.arctan2(x[:, 1], x[:, 0]))
        return np.abs((yaw + 90.0) % 180.0 - 90.0)  # a box looks the same turned by 180 deg

    assert np.all(start_yaws(0.0) < 30.0)
    assert np.mean(start_yaws(np.pi) > 30.0) >= 0.4
