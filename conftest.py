"""Test-wide environment: loopback-only DDS and a ROS_DOMAIN_ID of this run's own.

The domain is claimed with an exclusive lock file so that concurrent test runs on one machine
(developers, CI, helpers), and the pytest-xdist workers of one run, never see each other's topics.
Every rclpy process a test starts inherits both variables through os.environ.

Nothing here touches sys.path: the ROS packages' tests see what an installed workspace sees, and the
training tests import `dexndm_training` through its editable install (`pip install -e training`, done
by scripts/setup.sh); launch/test/test_dependencies.py checks that nothing below training imports it.
"""
from __future__ import annotations

import fcntl
import os
import tempfile

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


# One domain per pytest process. A pytest-xdist worker inherits the controller's environment, claim
# included, so each worker claims its own; otherwise an inherited DEXNDM_TEST_DOMAIN_ID is honoured.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if "DEXNDM_TEST_DOMAIN_ID" not in os.environ or os.environ.get("DEXNDM_TEST_DOMAIN_OWNER", "") != _WORKER:
    os.environ["DEXNDM_TEST_DOMAIN_ID"] = str(_claim_domain_id())
    os.environ["DEXNDM_TEST_DOMAIN_OWNER"] = _WORKER
os.environ["ROS_DOMAIN_ID"] = os.environ["DEXNDM_TEST_DOMAIN_ID"]
os.environ.setdefault("ROS_LOG_DIR", os.path.join(tempfile.gettempdir(), f"dexndm-ros-log-{os.getpid()}"))


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: 1.5 workers per usable CPU. Many tests wait on ROS graphs running at 20 Hz of wall
    clock, so two workers leave the cores partly idle: on this 2-core machine 3 workers took the suite
    from 225 s to 204 s, 4 workers were slower (230 s) and starved the emulated bus's replies."""
    return max(1, len(os.sched_getaffinity(0)) * 3 // 2)
