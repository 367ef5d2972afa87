"""Emulated Dynamixel Protocol 2.0 bus: 16 XC330 servos answering on a pseudo-terminal.

bus.py puts together control_table.py (each servo's registers and access rules), faults.py (what
to inject), pty_transport.py (the pty and its stable link) and dispatch.py (what the servos do with
each instruction); motors.py holds the motor models behind Present Position/Velocity/Current.
"""
from .bus import EmulatedBus
from .faults import FaultPlan
from .motors import FirstOrderMotors, MotorModel

__all__ = ["EmulatedBus", "FaultPlan", "FirstOrderMotors", "MotorModel"]
