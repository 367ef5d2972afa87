"""Quest 3 WebXR teleoperation: server, page, arm and axis mapping, teleop node."""
