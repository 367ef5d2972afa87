"""The grasp cache: per-world settled states for resets without settling, and the per-set/wrist report."""
from dataclasses import replace

import numpy as np
import pytest

from dexndm_training import grasps
from dexndm_training.cli import main
from dexndm_training.env import EnvConfig, RotationEnv

CFG = EnvConfig(num_envs=3, object="normal_cuboid", grasp_candidates=6, threads=1, seed=2, reset_cache=2,
                disturbance_scale=0.0)


def test_a_full_state_cache_restores_a_settled_grasp_without_settle_ticks():
    env = RotationEnv(CFG)
    try:
        for _ in range(3):  # each reset that closes the fingers well adds that world's settled state
            env.reset()
        assert all(len(c) == 2 for c in env.state_cache)
        restores = env.reset_restores
        for _ in range(5):  # disturb the worlds, then reset: every world comes back into a cached state
            env.sim.set_targets(env.sim.q + 0.3)
            env.sim.step()
        env.reset()
        assert env.reset_restores == restores + 3
        assert np.all(env.sim.time == 0.0)
        spot = env.sim.grasp_spot
        assert np.all(np.linalg.norm(env.sim.object_pose[:, :3] - spot, axis=1) < CFG.reset_max_distance)
        # the restored state is one of the cached ones, bit for bit (joint angles of each world)
        qadr = env.sim._qadr
        cached_q = [[s[1:][qadr] for s in c] for c in env.state_cache]  # INTEGRATION state: time, then qpos
        for i in range(3):
            assert any(np.array_equal(env.sim.q[i], q) for q in cached_q[i])
        assert np.allclose(env.previous_target, env.sim.q)
    finally:
        env.close()


def test_fill_reset_cache_fills_every_world_so_resets_only_restore():
    env = RotationEnv(replace(CFG, reset_cache=3))
    try:
        assert all(len(c) < 3 for c in env.state_cache)  # the first reset added at most one each
        rounds = env.fill_reset_cache()
        assert 2 <= rounds <= 9 and all(len(c) == 3 for c in env.state_cache)
        assert env.fill_reset_cache() == 0  # nothing left to fill
        restores = env.reset_restores
        env.reset()
        assert env.reset_restores == restores + 3 and np.all(env.sim.time == 0.0)
    finally:
        env.close()


def test_reset_cache_zero_always_closes_the_fingers():
    env = RotationEnv(replace(CFG, reset_cache=0))
    try:
        for _ in range(3):
            env.reset()
        assert env.reset_restores == 0 and all(len(c) == 0 for c in env.state_cache)
    finally:
        env.close()


def test_restore_refuses_states_of_the_wrong_shape():
    env = RotationEnv(replace(CFG, num_envs=1))
    try:
        with pytest.raises(ValueError, match="save_states"):
            env.sim.restore_states([0], np.zeros((1, 5)))
    finally:
        env.close()


def test_cache_report_per_set_and_wrist(capsys):
    row = grasps.cache_success("normal_cuboid", "palm_up", replace(CFG, grasp_candidates=6))
    assert row["candidates"] == 6 and 0 < row["kept"] <= 6
    assert row["success_rate"] == pytest.approx(row["kept"] / 6)
    assert main(["grasps", "--objects", "normal_cuboid", "--wrists", "palm_up", "palm_down", "--num-envs", "3",
                 "--candidates", "6", "--threads", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "| object set | palm_up | palm_down |"
    assert out[-1].startswith("cells=2 mean_success_rate=")
