"""The canonical grasp of each simulated world: object placements tried in order until one holds.

BatchedHandSim.reset runs `search` once per world (at its first default reset, for all searching
worlds together); every later default reset restores the state it found. The candidates are tried
under each world's own wrist, so the grasp found depends on the wrist and the object.
"""
from __future__ import annotations

import mujoco
import numpy as np

from dexndm_description import mjcf, wrist as wrists

#: Object placements tried for the canonical grasp, in order: (spot in the palm frame m, yaw of the
#: object about the palm normal rad, gravity into the palm during the close as a fraction of g).
#: Fingertip grasps first (object among the fingertips, no gravity while they close), the palm rest
#: last (object settles onto the palm). Chosen by holding rates under palm_down / palm_up.
_Q = float(np.pi / 4)
GRASP_CANDIDATES: tuple[tuple[tuple[float, float, float], float, float], ...] = (
    ((-0.02, -0.02, -0.115), 0.0, 0.0),
    ((-0.01, -0.04, -0.12), _Q, 0.0),
    ((-0.02, -0.02, -0.115), -_Q, 0.0),
    ((-0.01, -0.02, -0.13), 0.0, 0.0),
    ((-0.02, -0.035, -0.13), 0.0, 0.0),
    ((-0.02, -0.02, -0.10), 0.0, 0.0),
    ((0.0, -0.035, -0.115), 0.0, 0.0),
    (tuple(mjcf.GRASP_SPOT), 0.0, 1.0),
)
#: Over the palm's centre (palm frame, m): where an object rests palm up when it stands on an end.
PALM_CENTRE_SPOT = (-0.045, -0.0225, -0.085)
#: Object sets that stand on an end when they rest on an upturned palm (see `rest_placement`).
STANDING_SETS = ("normal_cylinder", "small_cylinder")


def palm_up(wrist_xyzw) -> bool:
    """True when gravity points into the palm (the palm normal within ~45 deg of straight up)."""
    into_palm = wrists.quat_to_matrix(np.asarray(wrist_xyzw, dtype=float)).T @ np.array([0.0, 0.0, -1.0])
    return bool(into_palm[2] > 0.7)


def rest_placement(object_set: str | None, wrist_xyzw, stand: bool = False) -> tuple[tuple[float, float, float], bool]:
    """(spot in the palm frame m, upright) of an object placed over the palm before the fingers close on it.

    With `stand` (BatchedHandSim's stand_cylinders), palm up a cylinder stands on an end over the palm's centre:
    lying on the palm it rolls under the smallest push (zero action with the env's disturbance forces: RotP 3.2
    rad/s, TTF 0.77 over 16 episodes), standing it stays (RotP 0.29, TTF 0.91), and a turn about the palm normal is
    a turn about its own axis. Everything else goes to GRASP_SPOT lying, its long axis along the palm's y axis."""
    if stand and object_set in STANDING_SETS and palm_up(wrist_xyzw):
        return PALM_CENTRE_SPOT, True
    return tuple(float(v) for v in mjcf.GRASP_SPOT), False


#: Control ticks a candidate grasp must hold, and how little the object may move (m) to be taken.
GRASP_TEST_TICKS = 30
GRASP_STILL = 0.004


def search(sim, ids: np.ndarray, goal: np.ndarray) -> dict[int, np.ndarray]:
    """For each world in ids try GRASP_CANDIDATES in order under its own wrist (all searching worlds
    together); keep the first whose object moves less than GRASP_STILL m during GRASP_TEST_TICKS, else
    the one that moved least. Returns {world: its integration state right after the close}.

    `sim` is the BatchedHandSim: its `_place` (object and fingers at a candidate), `_close` (fingers
    close, gravity returns) and `_ticks` (control ticks holding goal) do the physics."""
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    a = sim._obj_qadr
    best_moved = {int(i): np.inf for i in ids}
    found: dict[int, np.ndarray] = {}
    searching = np.asarray(ids)
    standing = [i for i in searching if rest_placement(sim.object_set, sim._wrists[i], sim.stand_cylinders)[1]]
    if standing:  # palm up a cylinder stands on the palm: that is its grasp
        gentle = np.zeros(sim.num_envs, dtype=bool)
        gentle[standing] = True
        for i in standing:
            sim._place(i, goal[i], PALM_CENTRE_SPOT, 0.0, 1.0, upright=True)
        sim._close(np.asarray(standing), goal, gentle=gentle)
        for i in standing:
            found[int(i)] = np.zeros(mujoco.mj_stateSize(sim.models[i], spec))
            mujoco.mj_getState(sim.models[i], sim._d(i), found[int(i)], spec)
        searching = np.array([i for i in searching if i not in standing], dtype=int)
    for spot, yaw, into_palm in GRASP_CANDIDATES:
        if len(searching) == 0:
            break
        for i in searching:
            sim._place(i, goal[i], spot, yaw, into_palm)
        sim._close(searching, goal)
        states, starts = {}, {}
        for i in searching:
            m, d = sim.models[i], sim._d(i)
            states[i] = np.zeros(mujoco.mj_stateSize(m, spec))
            mujoco.mj_getState(m, d, states[i], spec)
            starts[i] = d.qpos[a:a + 3].copy()
        sim._ticks(searching, goal, GRASP_TEST_TICKS)
        still = []
        for i in searching:
            moved = float(np.linalg.norm(sim._d(i).qpos[a:a + 3] - starts[i]))
            if moved < best_moved[int(i)]:
                best_moved[int(i)], found[int(i)] = moved, states[i]
            if moved >= GRASP_STILL:
                still.append(i)
        searching = np.array(still, dtype=int)
    return found
