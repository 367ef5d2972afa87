"""Views of the hand with rerun: `hand_model` (forward kinematics), `recorder` (no rclpy), `viewer_node`."""
