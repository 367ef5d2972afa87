"""A joint's step response in the source and target worlds, against independent integrations of each
world's documented law (docs/SIM.md), and against each other."""
import numpy as np
import pytest

from dexndm_description.plots import joint_step_response
from dexndm_description.worlds import WorldConfig

JOINT = 3  # if_dip: the distal joint, nothing but the distal link moves with it
STEP = 0.3  # rad
TICKS = 8


def _sim_response(cfg: WorldConfig):
    """q of JOINT after every physics step, q before the step, and the joint's inertia (kg m^2)."""
    trace, q0, inertia = joint_step_response(cfg, JOINT, STEP, TICKS)
    return q0, trace, inertia


def _model_response(cfg: WorldConfig, q0: float, inertia: float, steps: int):
    """Semi-implicit Euler as MuJoCo's implicitfast integrates it (v' = v + h f / (I + h c), c the
    velocity-proportional gains treated implicitly), of one joint under the documented law, written
    out here independently of worlds.py."""
    h, q, v, out = cfg.timestep, q0, 0.0, []
    rad_per_tick = 2 * np.pi / 4096
    for k in range(steps):
        goal = q0 if k < cfg.delay_substeps else q0 + STEP
        if cfg.actuation == "pd_torque":
            kp, kd = cfg.pd_kp[JOINT], cfg.pd_kd[JOINT]
            tau = np.clip(kp * (goal - q) - kd * v, -cfg.torque_limit, cfg.torque_limit)
            implicit = kd + cfg.damping
        else:
            err = goal - q
            err = np.sign(err) * max(abs(err) - cfg.backlash / 2, 0.0)
            amps = (cfg.servo_current_per_p_unit * cfg.servo_p[JOINT] / 128 * err / rad_per_tick
                    - cfg.servo_current_per_d_unit * cfg.servo_d[JOINT] / 16 * v * cfg.servo_d_time_base / rad_per_tick)
            amps = np.clip(amps, -cfg.current_limit, cfg.current_limit)
            tau = cfg.torque_constant * amps
            room = cfg.stall_torque * np.clip(1 - abs(v) / cfg.no_load_speed, 0, 1)
            if np.sign(tau) == np.sign(v):
                tau = np.clip(tau, -room, room)
            implicit = cfg.damping
        force = tau - cfg.damping * v
        if abs(v) > 1e-4:
            force -= cfg.frictionloss * np.sign(v)
        elif abs(force) <= cfg.frictionloss:
            force = -inertia * v / h  # static friction holds the joint
        else:
            force -= cfg.frictionloss * np.sign(force)
        v = v + h * force / (inertia + h * implicit)
        q = q + h * v
        out.append(q)
    return np.array(out)


def _figures(q0: float, trace: np.ndarray, h: float):
    """(10-90 % rise time s, overshoot fraction of the step)."""
    x = (trace - q0) / STEP
    t10 = np.argmax(x >= 0.1)
    t90 = np.argmax(x >= 0.9)
    assert x.max() >= 0.9, "the joint never reached 90 % of the step"
    return (t90 - t10) * h, max(x.max() - 1.0, 0.0)


@pytest.fixture(scope="module")
def responses():
    out = {}
    for cfg in (WorldConfig.source(), WorldConfig.target()):
        q0, trace, inertia = _sim_response(cfg)
        out[cfg.name] = (cfg, q0, trace, _model_response(cfg, q0, inertia, len(trace)))
    return out


@pytest.mark.parametrize("world", ["source", "target"])
def test_each_world_follows_its_documented_law(responses, world):
    cfg, q0, trace, model = responses[world]
    assert np.sqrt(np.mean((trace - model) ** 2)) < 0.02 * STEP
    rise_sim, over_sim = _figures(q0, trace, cfg.timestep)
    rise_model, over_model = _figures(q0, model, cfg.timestep)
    assert rise_sim == pytest.approx(rise_model, abs=1.01 * cfg.timestep)
    assert over_sim == pytest.approx(over_model, abs=0.05)


def test_source_and_target_responses_differ(responses):
    cfg_s, q0_s, trace_s, _ = responses["source"]
    cfg_t, q0_t, trace_t, _ = responses["target"]
    rise_s, over_s = _figures(q0_s, trace_s, cfg_s.timestep)
    rise_t, over_t = _figures(q0_t, trace_t, cfg_t.timestep)
    assert abs(rise_t - rise_s) > 0.3 * min(rise_s, rise_t)
    assert over_t > over_s + 0.05  # the servo's light D term leaves an overshoot; the paper's PD does not


def test_source_actuators_apply_the_clipped_pd_law_exactly():
    import mujoco

    from dexndm_description import hand
    from dexndm_description.sim import BatchedHandSim
    from dexndm_description.worlds import pd_torque

    with BatchedHandSim(num_envs=1, world="source", scene="hand_only", object=None, threads=1) as sim:
        rng = np.random.default_rng(0)
        sim.set_targets(hand.CANONICAL_POSE + rng.normal(0, 0.3, 16))
        sim.step()
        m, d = sim.models[0], sim.datas[0]
        target = hand.clip_to_limits(hand.CANONICAL_POSE + rng.uniform(-1.0, 1.0, 16))
        d.ctrl[:] = target
        mujoco.mj_forward(m, d)
        expected = pd_torque(sim.config, target, sim.q[0], sim.qdot[0])
        np.testing.assert_allclose(d.actuator_force, expected, atol=1e-9)
        assert np.any(np.abs(expected) == sim.config.torque_limit)  # some joints hit the clip
