import numpy as np
import pytest

from dexndm_description import hand
from dexndm_policy import observation as ob


def test_layout_is_327_wide_with_wrist_then_axis_last():
    assert ob.OBS_DIM == 327
    hist = ob.ObservationHistory(num_envs=2)
    q0 = np.tile(hand.CANONICAL_POSE, (2, 1))
    hist.reset(q0, q0)
    obs = hist.observation([0, 0, 0, 1], [0, 0, 1])
    assert obs.shape == (2, 327) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[:, ob.WRIST_SLICE], [[0, 0, 0, 1]] * 2)
    np.testing.assert_allclose(obs[:, ob.AXIS_SLICE], [[0, 0, 1]] * 2)


def test_history_is_oldest_first_and_pairs_q_with_previous_target():
    hist = ob.ObservationHistory(num_envs=1)
    hist.reset(np.zeros((1, 16)), np.zeros((1, 16)))
    for t in range(1, 13):
        hist.push(np.full((1, 16), t), np.full((1, 16), -t))
    steps = hist.observation([0, 0, 0, 1], [1, 0, 0])[0, ob.HISTORY_SLICE].reshape(10, 32)
    assert steps[0, 0] == 3 and steps[-1, 0] == 12  # oldest first
    assert steps[-1, 16] == -12


def test_reset_of_a_subset_leaves_the_others():
    hist = ob.ObservationHistory(num_envs=3)
    hist.reset(np.ones((3, 16)), np.ones((3, 16)))
    hist.reset(np.zeros((1, 16)), np.zeros((1, 16)), env_ids=[1])
    obs = hist.observation([0, 0, 0, 1], [0, 0, 1])
    assert obs[1, 0] == 0 and obs[0, 0] == 1 and obs[2, 0] == 1


def test_integrate_action_scales_clips_delta_and_limits():
    a = hand.CANONICAL_POSE.copy()
    np.testing.assert_allclose(ob.integrate_action(a, np.ones(16)), hand.clip_to_limits(a + 1 / 24))
    np.testing.assert_allclose(ob.integrate_action(a, 5 * np.ones(16)), hand.clip_to_limits(a + 1 / 24))
    np.testing.assert_allclose(ob.integrate_action(hand.UPPER, np.ones(16)), hand.UPPER)


def test_check_observation_refuses_wrong_width_and_nan():
    with pytest.raises(ValueError, match="327"):
        ob.check_observation(np.zeros((1, 326)))
    bad = np.zeros((1, 327))
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ob.check_observation(bad)
