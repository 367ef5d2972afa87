"""Emulated Dynamixel Protocol 2.0 bus: 16 XC330 servos answering on a pseudo-terminal."""
from .bus import EmulatedBus, FaultPlan
from .motors import FirstOrderMotors, MotorModel

__all__ = ["EmulatedBus", "FaultPlan", "FirstOrderMotors", "MotorModel"]
