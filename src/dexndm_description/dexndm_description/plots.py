"""Figures for docs/SIM.md: `python -m dexndm_description.plots step-response OUT.png`."""
from __future__ import annotations

import sys

import numpy as np

from dexndm_description import hand
from dexndm_description.worlds import WorldConfig


def joint_step_response(cfg: WorldConfig, joint: int = 3, step: float = 0.3, ticks: int = 8):
    """Step a joint's target by `step` rad from the canonical pose (bare hand, palm down) and return
    (q of that joint after every physics step [rad], q before the step, the joint's inertia incl.
    armature [kg m^2])."""
    import mujoco

    from dexndm_description.sim import BatchedHandSim

    with BatchedHandSim(num_envs=1, world=cfg, scene="hand_only", wrist="palm_down", object=None, threads=1) as sim:
        q0 = hand.CANONICAL_POSE.copy()
        sim.reset(q=q0)
        m, d = sim.models[0], sim.datas[0]
        full = np.zeros((m.nv, m.nv))
        mujoco.mj_fullM(m, d, full)
        dof = m.jnt_dofadr[m.joint(hand.JOINT_NAMES[joint]).id]
        target = q0.copy()
        target[joint] += step
        sim.substep_trace = [[]]
        sim.set_targets(target)
        for _ in range(ticks):
            sim.step()
        return np.array(sim.substep_trace[0])[:, joint], q0[joint], float(full[dof, dof])


def plot_step_response(path: str, joint: int = 3, step: float = 0.3) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    for cfg in (WorldConfig.source(), WorldConfig.target()):
        trace, q0, _ = joint_step_response(cfg, joint, step)
        t = np.arange(1, len(trace) + 1) * cfg.timestep
        ax.plot(np.concatenate([[0], t]), np.concatenate([[0], (trace - q0) / step]), ".-", label=cfg.name)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_xlabel("time after the new target (s)")
    ax.set_ylabel("fraction of the step")
    ax.set_title(f"{hand.JOINT_NAMES[joint]}: {step} rad target step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "step-response":
        sys.exit("usage: python -m dexndm_description.plots step-response OUT.png")
    plot_step_response(sys.argv[2])
