"""Run the emulated bus standalone: `python -m dexndm_driver.emulator --link /tmp/ttyDXL`.

Point a `hand_driver backend:=dynamixel port:=/tmp/ttyDXL` (or any Dynamixel tool) at the link.
Runs until SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import signal
import threading

from dexndm_description import hand

from .bus import EmulatedBus
from .motors import FirstOrderMotors


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link", required=True, help="path of the symlink to the pty that clients open")
    parser.add_argument("--motor", default="first_order", choices=("first_order", "physics"),
                        help="motor model: a first-order position lag or the target world's physics")
    parser.add_argument("--no-fast-sync-read", action="store_true", help="servos ignore fast sync read")
    args = parser.parse_args(argv)
    if args.motor == "physics":
        from dexndm_description.wrist import parse_wrist

        from ..backends import WorldConfig, make_sim
        from .motors import PhysicsMotors
        world = WorldConfig(parse_wrist("palm_up"))
        motors = PhysicsMotors(make_sim(world), q0=hand.CANONICAL_POSE, has_object=world.has_object)
    else:
        motors = FirstOrderMotors(q0=hand.CANONICAL_POSE)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmulatedBus(motors, link=args.link) as bus:
        bus.faults.fast_sync_read = not args.no_fast_sync_read
        print(f"emulated bus: 16 XC330 servos on {bus.port}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
