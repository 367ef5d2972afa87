"""Chaos Box collection: replay sources, the replay-and-log node and the rosbag2 writer."""
