"""Hand backends behind one interface: the Dynamixel bus, the emulated bus, and the simulated hand.

The driver core (driver.py) only sees `HandBackend`. `lockstep` backends (the simulated hand)
advance time with step(); bus backends run on the wall clock.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dexndm_description import hand

from .dynamixel import DynamixelHand, JointReading, ServoHealth
from .emulator import EmulatedBus, FirstOrderMotors
from .emulator.motors import PhysicsMotors
from .sdk_io import BusError, PortLost, SdkIO


@dataclass(frozen=True)
class WorldConfig:
    """Simulation settings shared by the sim backend and the emulator's physics."""

    wrist: np.ndarray  # quaternion x, y, z, w
    object: str | None = "normal_cylinder"
    scene: str = "grasp"
    world: str = "target"
    seed: int = 0

    @property
    def has_object(self) -> bool:
        """True when the scene holds an object whose pose is worth publishing."""
        return self.object is not None and self.scene == "grasp"


@dataclass
class WorldState:
    """What the simulation knows beyond the joints: object pose [7] (xyz, xyzw) or None, wrist [4]."""

    object_pose: np.ndarray | None
    wrist_quat: np.ndarray


class HandBackend(Protocol):
    """What the driver core needs from a hand."""

    name: str
    lockstep: bool
    port_name: str

    def open(self) -> None: ...

    def enable(self, on: bool, hold: np.ndarray) -> list[int]: ...

    def read(self) -> JointReading: ...

    def write(self, targets: np.ndarray) -> np.ndarray: ...

    def step(self) -> None: ...

    def sim_time_ns(self) -> int: ...

    def world(self) -> WorldState | None: ...

    def poll_health(self) -> ServoHealth | None: ...

    def close(self) -> None:
        """Undo open(): close the port (or free the sim); open() may follow again."""

    def release(self) -> None:
        """Once, at shutdown, after close(): free what the backend owns besides the port (an emulator)."""


def make_sim(config: WorldConfig, num_envs: int = 1):
    """BatchedHandSim for one env in config's world; ImportError explains what is missing."""
    try:
        from dexndm_description.sim import BatchedHandSim
    except ImportError as err:
        raise ImportError(f"the simulated hand (dexndm_description.sim) is not available: {err}") from err
    scene = "hand_only" if config.object is None and config.scene == "grasp" else config.scene
    return BatchedHandSim(num_envs=num_envs, world=config.world, scene=scene, wrist=config.wrist,
                          object=config.object, seed=config.seed, threads=1)


class BusBackend:
    """The hand on a Dynamixel bus (a U2D2's serial port or the emulator's pty)."""

    lockstep = False

    def __init__(self, port: str, baudrate: int = 4_000_000, name: str = "dynamixel",
                 fast_sync_read: bool | None = None, latency_ms: float = 16.0) -> None:
        self.name = name
        self.port_name = port
        self.hand = DynamixelHand(SdkIO(port, baudrate, latency_ms), fast_sync_read=fast_sync_read)

    def open(self) -> None:
        self.hand.connect()
        self.hand.setup()

    def enable(self, on: bool, hold: np.ndarray) -> list[int]:
        """Torque on (rebooting servos with a latched hardware error first) or off; returns rebooted IDs."""
        rebooted: list[int] = []
        if on:
            faulted = sorted(self._poll_health_retrying().errors)
            if faulted:
                rebooted = self.hand.reboot(faulted)
        self.hand.set_torque(on, hold if on else None)
        return rebooted

    def _poll_health_retrying(self, attempts: int = 3) -> ServoHealth:
        """One lost or corrupt status packet must not fail a torque-on (the register writes retry too)."""
        for _ in range(attempts - 1):
            try:
                return self.hand.poll_health()
            except PortLost:
                raise
            except BusError:
                continue
        return self.hand.poll_health()

    def read(self) -> JointReading:
        return self.hand.read()

    def write(self, targets: np.ndarray) -> np.ndarray:
        return self.hand.write(targets)

    def step(self) -> None:
        raise RuntimeError("a bus backend runs on the wall clock; step() is for lockstep backends")

    def sim_time_ns(self) -> int:
        return time.time_ns()

    def world(self) -> WorldState | None:
        return None

    def poll_health(self) -> ServoHealth | None:
        return self.hand.poll_health()

    def close(self) -> None:
        self.hand.close()

    def release(self) -> None:
        pass


class EmulatedBackend(BusBackend):
    """The real bus code and dynamixel-sdk against 16 emulated servos on a pty this backend owns.

    motor_model "physics" drives the servos with the target world (50 ms per tick of wall clock);
    "first_order" uses a simple position-servo lag (no object).
    """

    def __init__(self, world: WorldConfig, initial_pose: np.ndarray, motor_model: str = "physics",
                 baudrate: int = 4_000_000, latency_ms: float = 16.0) -> None:
        if motor_model == "physics":
            self.physics = PhysicsMotors(make_sim(world), q0=initial_pose, has_object=world.has_object)
            motors = self.physics
        elif motor_model == "first_order":
            self.physics = None
            motors = FirstOrderMotors(q0=initial_pose)
        else:
            raise ValueError(f"unknown emulator motor model {motor_model!r}: use physics or first_order")
        self.bus = EmulatedBus(motors, seed=world.seed, log_limit=10_000)
        self.bus.start()
        self._wrist = np.asarray(world.wrist, dtype=float)
        super().__init__(self.bus.port, baudrate, name="emulated", latency_ms=latency_ms)

    def world(self) -> WorldState | None:
        if self.physics is None:
            return WorldState(None, self._wrist)
        state = self.physics.world_state()
        return WorldState(state["object_pose"], state["wrist_quat"])

    def release(self) -> None:
        """The emulated servos stay powered across cleanup and configure; they stop here."""
        self.bus.stop()


class SimBackend:
    """The target (or source) world directly, no bus: lockstep, one 50 ms physics tick per step()."""

    name = "sim"
    lockstep = True
    port_name = "-"

    def __init__(self, world: WorldConfig, initial_pose: np.ndarray) -> None:
        self.config = world
        self.initial_pose = np.asarray(initial_pose, dtype=float)
        self.sim = make_sim(world)  # bad world/scene/object/wrist settings fail here, at startup
        self._steps = 0

    def open(self) -> None:
        if self.sim is None:  # freed by close(): build it again
            self.sim = make_sim(self.config)
        self.sim.reset(q=self.initial_pose[None, :])
        self.sim.set_targets(self.initial_pose[None, :])
        self._steps = 0

    def enable(self, on: bool, hold: np.ndarray) -> list[int]:
        """The simulated servos cannot go limp: off only means commands are refused (targets held)."""
        if on:
            self.sim.set_targets(hand.clip_to_limits(np.asarray(hold, dtype=float))[None, :])
        return []

    def read(self) -> JointReading:
        return JointReading(np.array(self.sim.q[0], dtype=float), np.array(self.sim.qdot[0], dtype=float),
                            np.array(self.sim.joint_effort[0], dtype=float), self.sim_time_ns())

    def write(self, targets: np.ndarray) -> np.ndarray:
        sent = hand.clip_to_limits(np.asarray(targets, dtype=float))
        self.sim.set_targets(sent[None, :])
        return sent

    def step(self) -> None:
        self.sim.step()
        self._steps += 1

    def sim_time_ns(self) -> int:
        """Simulated time since start (ns), counted in whole 50 ms ticks so stamps are exact."""
        return self._steps * int(round(hand.CONTROL_DT * 1e9))

    def world(self) -> WorldState | None:
        pose = np.array(self.sim.object_pose[0], dtype=float) if self.config.has_object else None
        return WorldState(pose, np.array(self.sim.wrist_quat[0], dtype=float))

    def poll_health(self) -> ServoHealth | None:
        return None

    def close(self) -> None:
        if self.sim is not None:
            self.sim.close()
            self.sim = None

    def release(self) -> None:
        pass


BACKENDS = ("sim", "emulated", "dynamixel")
INITIAL_POSES = {"canonical": hand.CANONICAL_POSE, "open": hand.OPEN_POSE}


def parse_object(name: str) -> str | None:
    """The `object` parameter: a set name, or None for "none"/"" (hand only)."""
    return None if name.strip().lower() in ("", "none") else name.strip()


def initial_pose(name: str) -> np.ndarray:
    """The `initial_pose` parameter (canonical | open) as joint angles (rad)."""
    try:
        return INITIAL_POSES[name].copy()
    except KeyError:
        raise ValueError(f"unknown initial_pose {name!r}: use {' or '.join(INITIAL_POSES)}") from None


def make_backend(backend: str, port: str, baudrate: int, world: WorldConfig, pose: np.ndarray,
                 emulator_motor_model: str = "physics", latency_ms: float = 16.0) -> HandBackend:
    """The backend the hand_driver parameters ask for; ValueError says what is valid."""
    if backend == "sim":
        return SimBackend(world, pose)
    if backend == "emulated":
        return EmulatedBackend(world, pose, motor_model=emulator_motor_model, baudrate=baudrate,
                               latency_ms=latency_ms)
    if backend == "dynamixel":
        return BusBackend(port, baudrate, latency_ms=latency_ms)
    raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
