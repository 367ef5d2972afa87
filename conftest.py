"""Test-wide environment: loopback-only DDS and a ROS_DOMAIN_ID of this run's own.

The domain is claimed with an exclusive lock file so that concurrent test runs on one machine
(developers, CI, helpers) never see each other's topics. Every rclpy process a test starts
inherits both variables through os.environ.
"""
from __future__ import annotations

import fcntl
import os
import sys
import tempfile

# This checkout's training package, not the one the shared venv's editable install points at
# (worktrees share one venv); PYTHONPATH carries it into subprocesses.
_TRAINING = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training")
sys.path.insert(0, _TRAINING)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_TRAINING, os.environ.get("PYTHONPATH", "")) if p)

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("MUJOCO_GL", "egl")

_DOMAIN_LOCK = None


def _claim_domain_id() -> int:
    global _DOMAIN_LOCK
    lock_dir = os.path.join(tempfile.gettempdir(), "dexndm-ros-domains")
    os.makedirs(lock_dir, exist_ok=True)
    start = os.getpid() % 100
    for offset in range(100):
        domain = 1 + (start + offset) % 100  # 1..100; 0 is the default users run on
        handle = open(os.path.join(lock_dir, f"{domain}.lock"), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _DOMAIN_LOCK = handle  # held until this process exits
        return domain
    raise RuntimeError("no free ROS_DOMAIN_ID in 1..100 on this machine")


if "DEXNDM_TEST_DOMAIN_ID" not in os.environ:
    os.environ["DEXNDM_TEST_DOMAIN_ID"] = str(_claim_domain_id())
os.environ["ROS_DOMAIN_ID"] = os.environ["DEXNDM_TEST_DOMAIN_ID"]
os.environ.setdefault("ROS_LOG_DIR", os.path.join(tempfile.gettempdir(), f"dexndm-ros-log-{os.getpid()}"))
