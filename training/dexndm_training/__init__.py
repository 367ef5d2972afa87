"""DexNDM offline training pipeline (simulation, learning, export, evaluation); no rclpy."""
