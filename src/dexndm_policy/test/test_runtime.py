"""The ONNX runtime: contract checks, one step's arithmetic, bad models and bad states."""
import json

import numpy as np
import onnx
import pytest

from dexndm_description import hand
from dexndm_policy import contract, observation, runtime
from dexndm_policy.controller import RotationController


@pytest.fixture(scope="module")
def policy():
    return runtime.PolicyRuntime(axis="z", wrist="palm_up")


def test_default_models_are_installed_valid_small_and_described(policy):
    models = runtime.default_models_dir()
    for kind in ("generalist", "residual"):
        config = json.loads((models / f"{kind}.json").read_text())
        meta = json.loads(getattr(policy, kind).metadata[contract.META_CONFIG])
        assert isinstance(config, dict) and config  # every shipped model has its config beside it
        if config.get("trained") is False:  # the untrained defaults: small, and their JSON matches the file
            assert (models / f"{kind}.onnx").stat().st_size < 400_000
            assert meta["width"] == config["width"] and meta["trained"] is False
    assert policy.generalist.session.get_session_options().intra_op_num_threads == 1


def test_step_integrates_base_target_and_keeps_residual_out_of_history(policy):
    policy.use_residual = True
    q = hand.CANONICAL_POSE + 0.01
    policy.reset(q)
    out = policy.step(q)
    obs = policy.history.observation(policy.wrist, policy.axis)
    delta = policy.generalist(obs)[0]
    np.testing.assert_allclose(out.base_target, observation.integrate_action(hand.clip_to_limits(q), delta), atol=1e-6)
    residual = policy.residual(obs, out.base_target[None, :])[0]
    np.testing.assert_allclose(out.residual, residual, atol=1e-6)
    np.testing.assert_allclose(out.executed_target, hand.clip_to_limits(out.base_target + out.residual))
    out2 = policy.step(q)
    last = policy.history.observation(policy.wrist, policy.axis)[0, observation.HISTORY_SLICE].reshape(10, 32)[-1]
    np.testing.assert_allclose(last[16:], out.base_target, atol=1e-6)  # base, not executed, target
    assert hand.within_limits(out2.executed_target) and out2.inference_ms > 0


def test_residual_off_gives_zeros_and_executed_equals_base(policy):
    policy.use_residual = False
    policy.reset(hand.CANONICAL_POSE)
    out = policy.step(hand.CANONICAL_POSE)
    assert not np.any(out.residual)
    np.testing.assert_allclose(out.executed_target, out.base_target)
    policy.use_residual = True


def test_axis_changes_reach_the_observation_and_bad_axes_are_refused(policy):
    policy.set_axis("-x")
    policy.reset(hand.CANONICAL_POSE)
    np.testing.assert_allclose(policy.history.observation(policy.wrist, policy.axis)[0, observation.AXIS_SLICE], [-1, 0, 0])
    for bad in ("sideways", "general:99", "0,0,0", [np.nan, 0, 1]):
        with pytest.raises(ValueError):
            policy.set_axis(bad)
    np.testing.assert_allclose(policy.axis, [-1, 0, 0])  # unchanged
    policy.set_axis("z")


def test_missing_model_file_names_the_path_and_the_way_out(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(runtime.ModelNotFoundError, match=r"nope\.onnx does not exist.*dexndm-train make-default-models"):
        runtime.PolicyRuntime(generalist_path=missing)


def test_a_model_of_the_wrong_layout_or_kind_is_refused(tmp_path):
    model = onnx.load(str(runtime.default_model_path("generalist")))
    for entry in model.metadata_props:
        if entry.key == contract.META_LAYOUT:
            entry.value = "0"
    wrong_layout = tmp_path / "old_layout.onnx"
    onnx.save(model, str(wrong_layout))
    with pytest.raises(contract.ModelContractError, match=r"old_layout\.onnx.*layout version '0'.*re-export"):
        runtime.PolicyRuntime(generalist_path=wrong_layout)
    with pytest.raises(contract.ModelContractError, match="expected 'residual'"):
        runtime.PolicyRuntime(residual_path=runtime.default_model_path("generalist"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(contract.ModelContractError, match="cannot load"):
        runtime.PolicyRuntime(generalist_path=garbage)


def test_joint_state_checks():
    np.testing.assert_allclose(runtime.check_joint_state(hand.CANONICAL_POSE, hand.JOINT_NAMES), hand.CANONICAL_POSE)
    with pytest.raises(runtime.StateError, match="15 positions"):
        runtime.check_joint_state(np.zeros(15))
    bad = hand.CANONICAL_POSE.copy()
    bad[5] = np.nan
    with pytest.raises(runtime.StateError, match="NaN/inf at \\['mf_mcp'\\]"):
        runtime.check_joint_state(bad)
    with pytest.raises(runtime.StateError, match="order"):
        runtime.check_joint_state(np.zeros(16), list(reversed(hand.JOINT_NAMES)))


def test_controller_stops_on_bad_or_stale_states_and_restarts_with_a_fresh_history(policy):
    ctrl = RotationController(policy, max_state_age=0.5)
    q = hand.CANONICAL_POSE
    first = ctrl.on_state(q, [], 1.0, 1.0, 100.0)
    assert first.output is not None and ctrl.status()[0] == 0
    ctrl.on_state(q + 0.02, [], 1.05, 1.05, 100.05)
    nan = q.copy()
    nan[0] = np.nan
    refused = ctrl.on_state(nan, [], 1.10, 1.10, 100.10)
    assert refused.target is None and "NaN" in refused.reason and ctrl.status()[0] == 2
    assert ctrl.on_state(q, [], 1.0, 1.15, 100.15).target is None  # not newer than the last answered
    assert "0.800 s old" in ctrl.on_state(q, [], 1.2, 2.0, 100.2).reason
    resumed = ctrl.on_state(q, [], 1.25, 1.25, 100.25)
    assert resumed.output is not None and ctrl.status()[0] == 0
    steps = policy.history.observation(policy.wrist, policy.axis)[0, observation.HISTORY_SLICE].reshape(10, 32)
    np.testing.assert_allclose(steps[:, :16], np.tile(q, (10, 1)), atol=1e-6)  # history restarted at q
    assert ctrl.check_gap(100.25 + 2.0).startswith("no joint state") and ctrl.status()[0] == 2


def test_controller_disabled_holds_or_opens(policy):
    ctrl = RotationController(policy)
    q = hand.CANONICAL_POSE
    executed = ctrl.on_state(q, [], 1.0, 0, 0).target
    ctrl.set_enabled(False)
    held = ctrl.on_state(q + 0.1, [], 1.05, 0, 0)
    assert held.output is None
    np.testing.assert_allclose(held.target, executed)
    ctrl.disabled_command = "open"
    np.testing.assert_allclose(ctrl.on_state(q, [], 1.1, 0, 0).target, hand.OPEN_POSE)
    ctrl.set_enabled(True)
    assert not policy.started and ctrl.on_state(q, [], 1.15, 0, 0).output is not None
    with pytest.raises(ValueError, match="disabled_command"):
        RotationController(policy, disabled_command="drop")


def test_wrist_reaches_the_observation_and_bad_quaternions_are_refused(policy):
    policy.set_wrist("palm_down")
    policy.reset(hand.CANONICAL_POSE)
    np.testing.assert_allclose(policy.history.observation(policy.wrist, policy.axis)[0, observation.WRIST_SLICE], [0, 0, 0, 1])
    for bad in ("sideways", [0, 0, 0, 0], [np.nan, 0, 0, 1]):
        with pytest.raises(ValueError):
            policy.set_wrist(bad)
    np.testing.assert_allclose(policy.wrist, [0, 0, 0, 1])
    policy.set_wrist("palm_up")
