"""The source world's answer to a measured run (no rclpy): the same base policy, closed-loop, from the same
first joint state, in the training simulator (ideal PD), for the tracking error of `dexndm rotate`.

The reference world is `BatchedHandSim(world="source")` with the run's scene (object or free hand), wrist
and seed, reset to the run's first measured q, or, behind the sim driver, to the driver's initial pose and held
there for the ticks the driver ran before the policy's first command (sim stamps count ticks); the base policy runs as the policy node runs it
(PolicyRuntime, residual off: the base policy is what the source world was trained with). Under the sim
backend with world:=source and residual:=false the reference reproduces the run (tested), so any error
in the target world is the reality gap the base policy meets, and a residual that closes it lowers it.
"""
from __future__ import annotations

import numpy as np

from dexndm_description import hand


def source_world_run(q0, ticks: int, generalist_path=None, axis="z", wrist="palm_up", object: str = "normal_cylinder",
                     seed: int = 0, hold_ticks: int = 0) -> np.ndarray:
    """[ticks + 1, 16] q of the base policy run in the source world reset to q0 (rad); row 0 is the start.

    hold_ticks > 0: the hand first holds q0 for that many ticks (the sim driver's ticks before the policy's
    first command), and row 0 is the state after them."""
    from dexndm_description.sim import BatchedHandSim
    from dexndm_policy.runtime import PolicyRuntime

    q0 = np.asarray(q0, dtype=float)
    if q0.shape != (hand.NUM_JOINTS,) or not np.all(np.isfinite(q0)):
        raise ValueError(f"q0 must be {hand.NUM_JOINTS} finite joint angles (rad), got shape {list(q0.shape)}")
    scene = "hand_only" if object in ("", "none") else "grasp"
    sim = BatchedHandSim(num_envs=1, world="source", scene=scene, wrist=wrist,
                         object=None if scene == "hand_only" else object, seed=seed, threads=1)
    runtime = PolicyRuntime(generalist_path or None, None, axis=axis, wrist=wrist, use_residual=False)
    out = np.zeros((ticks + 1, hand.NUM_JOINTS))
    try:
        sim.reset(q=q0[None, :])
        sim.set_targets(q0[None, :])
        for _ in range(hold_ticks):
            sim.step()
        out[0] = sim.q[0]
        for t in range(ticks):
            sim.set_targets(runtime.step(sim.q[0]).executed_target[None, :])
            sim.step()
            out[t + 1] = sim.q[0]
    finally:
        sim.close()
    return out


def tracking_error(measured: np.ndarray, reference: np.ndarray) -> float:
    """Mean |q - q_ref| (rad) over ticks 1.. and joints; the start (row 0) is shared and not counted."""
    measured, reference = np.asarray(measured, float), np.asarray(reference, float)
    if measured.shape != reference.shape or len(measured) < 2:
        raise ValueError(f"need two equally long trajectories of >= 2 states, got {list(measured.shape)} and "
                         f"{list(reference.shape)}")
    return float(np.abs(measured[1:] - reference[1:]).mean())
