"""LEAP hand driver: Dynamixel, emulated-bus and simulated backends behind one hand_driver node."""
