"""The reality-gap monitor's core on real onnxruntime models fitted in the test (dynamics_fixture)."""
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from dexndm_description import hand
from dexndm_description.sim import BatchedHandSim
from dexndm_policy import contract, runtime
from dexndm_policy.gap_monitor import DynamicsModel, DynamicsModelNotFoundError, GapMonitor

sys.path.insert(0, str(Path(__file__).parent))
import dynamics_fixture as fx  # noqa: E402

TICK = 50_000_000  # ns


@pytest.fixture(scope="module")
def halfway_model(tmp_path_factory) -> DynamicsModel:
    """Fitted on q_{t+1} = q_t + 0.5 (a_t - q_t): the lockstep fixture's law."""
    return DynamicsModel(fx.halfway_model_path(tmp_path_factory, tmp_path_factory.mktemp("dyn")))


def feed(monitor: GapMonitor, q: np.ndarray, a: np.ndarray, steps_first: bool = False, start: int = 1) -> list:
    """One hand's run through the monitor: state t, then the step answering it (or the other way round)."""
    ticks = []
    for t in range(len(a)):
        stamp = (start + t) * TICK
        if steps_first:
            ticks += monitor.on_step(stamp, a[t])
            ticks += monitor.on_state(stamp, q[t])
        else:
            ticks += monitor.on_state(stamp, q[t])
            ticks += monitor.on_step(stamp, a[t])
    return ticks + monitor.on_state((start + len(a)) * TICK, q[len(a)])


def test_error_is_small_on_the_fitted_law_and_grows_on_other_dynamics(halfway_model):
    q, a = fx.first_order_rollouts(0.5, episodes=1, steps=60, seed=7)
    monitor = GapMonitor(halfway_model)
    ticks = feed(monitor, q[0], a[0])
    w = halfway_model.window
    assert len(ticks) == 60 - w + 1 and monitor.ticks == len(ticks)
    # each tick's prediction is the model on that joint's last W pairs, oldest first
    hist, nxt = fx.windows(q, a, w)
    np.testing.assert_allclose([t.predicted for t in ticks], halfway_model.predict(hist), atol=1e-6)
    np.testing.assert_allclose([t.measured for t in ticks], nxt, atol=1e-6)
    on_law = monitor.summary()
    assert on_law["gap_mean_rad"] < 0.002 and on_law["out_of_range_pairs"] == 0
    q2, a2 = fx.first_order_rollouts(0.2, episodes=1, steps=60, seed=7)
    slow = GapMonitor(halfway_model)
    feed(slow, q2[0], a2[0])
    off_law = slow.summary()
    assert off_law["gap_mean_rad"] > 0.005 and off_law["gap_mean_rad"] > 5 * on_law["gap_mean_rad"]
    line = GapMonitor.format(off_law)
    assert line.startswith("gap_ticks=51 gap_mean_rad=") and "per_joint" not in line


def test_leaving_the_fitted_range_is_flagged_on_that_joint(halfway_model):
    q, a = fx.first_order_rollouts(0.5, episodes=1, steps=40, seed=3)
    q, a = q[0].copy(), a[0].copy()
    high = halfway_model.spec.position_range[3, 1]
    q[25:28, 3] = high + 0.1  # if_dip well beyond what the model saw (margin 0.02)
    monitor = GapMonitor(halfway_model, range_margin=0.02)
    ticks = feed(monitor, q, a)
    flagged = np.array([t.out_of_range for t in ticks])
    assert not flagged[:, [j for j in range(16) if j != 3]].any()
    assert flagged[:, 3].any() and monitor.out_of_range_pairs == 3 and monitor.out_of_range_joints[3] == 3
    windows_with_it = [t for t in ticks if t.source_stamp >= 26 * TICK and t.source_stamp - 28 * TICK < 10 * TICK]
    assert all(t.out_of_range[3] for t in windows_with_it)  # the pair stays in the window W ticks


def test_topic_order_does_not_matter_and_breaks_restart_the_window(halfway_model):
    q, a = fx.first_order_rollouts(0.5, episodes=1, steps=30, seed=5)
    in_order = feed(GapMonitor(halfway_model), q[0], a[0])
    reversed_order = feed(GapMonitor(halfway_model), q[0], a[0], steps_first=True)
    np.testing.assert_allclose([t.error for t in in_order], [t.error for t in reversed_order])
    monitor = GapMonitor(halfway_model)
    ticks = []
    for t in range(30):  # the policy did not answer state 15: no pair, the window restarts
        ticks += monitor.on_state((t + 1) * TICK, q[0, t])
        if t != 15:
            ticks += monitor.on_step((t + 1) * TICK, a[0, t])
    assert monitor.breaks == 1 and len(ticks) == (15 - 10 + 1) + (14 - 10)  # state 30 never came
    skipped = GapMonitor(halfway_model)
    feed(skipped, q[0, :16], a[0, :15])
    feed(skipped, q[0, 16:], a[0, 16:], start=18)  # 100 ms between two states: a skipped tick
    assert skipped.breaks == 1 and skipped.ticks == (15 - 10 + 1) + (14 - 10 + 1)
    with pytest.raises(ValueError, match="16 finite"):
        monitor.on_state(99 * TICK, np.full(16, np.nan))


def test_the_sim_hand_against_a_model_of_other_dynamics(tmp_path):
    """Fitted on the source world's free hand: small error there, larger on the target world's servos."""
    rng = np.random.default_rng(0)

    def run(world: str, worlds: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        local = np.random.default_rng(seed)
        with BatchedHandSim(num_envs=worlds, world=world, scene="hand_only", object=None, threads=1) as sim:
            sim.reset(q=hand.CANONICAL_POSE)
            q, a = [sim.q], []
            target = np.tile(hand.CANONICAL_POSE, (worlds, 1))
            for _ in range(steps):
                target = np.clip(target + local.normal(0, 0.03, target.shape), hand.CANONICAL_POSE - 0.3,
                                 hand.CANONICAL_POSE + 0.3)
                a.append(sim.set_targets(target))
                sim.step()
                q.append(sim.q)
        return np.stack(q, axis=1), np.stack(a, axis=1)

    q, a = run("source", 24, 60, int(rng.integers(1 << 30)))
    model = DynamicsModel(fx.fit_and_export(q, a, tmp_path / "dynamics.onnx", iterations=300))
    errors = {}
    for world in ("source", "target"):
        qe, ae = run(world, 2, 50, seed=99)
        runs = [GapMonitor(model) for _ in range(2)]
        for k, monitor in enumerate(runs):
            feed(monitor, qe[k], ae[k])
        errors[world] = np.mean([m.summary()["gap_mean_rad"] for m in runs])
    assert errors["source"] < 0.003, errors  # ~0.8 mrad measured
    assert errors["target"] > 5 * errors["source"], errors  # ~14 mrad: delay, backlash, current limit


def test_missing_or_foreign_models_are_refused_with_what_to_do(tmp_path, halfway_model):
    with pytest.raises(DynamicsModelNotFoundError, match="dynamics.onnx contract.*gap_model:=PATH"):
        DynamicsModel(tmp_path / "dynamics.onnx")
    with pytest.raises(contract.ModelContractError, match="expected 'dynamics'"):
        DynamicsModel(runtime.default_model_path("generalist"))
    model = onnx.load(str(halfway_model.path))
    for entry in model.metadata_props:
        if entry.key == contract.META_WINDOW:
            entry.value = "5"
    onnx.save(model, str(tmp_path / "window5.onnx"))
    with pytest.raises(contract.ModelContractError, match=r"expected \[N, 16, 5, 2\]"):
        DynamicsModel(tmp_path / "window5.onnx")
    kept = [e for e in model.metadata_props if e.key != contract.META_INPUT_RANGES]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(tmp_path / "no_ranges.onnx"))
    with pytest.raises(contract.ModelContractError, match="dexndm_input_ranges"):
        DynamicsModel(tmp_path / "no_ranges.onnx")
