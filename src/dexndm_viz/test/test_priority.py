"""lower_priority: every thread of a viewer process (started before the call or after it) is niced, its
session group too, and has the longest scheduling slice, so a control-loop task that wakes takes the CPU
from it at once (docs/VIEWER.md)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dexndm_viz.viewers import NICE, SLICE_NS

CHILD = textwrap.dedent("""
    import os, threading
    from pathlib import Path
    from dexndm_viz.viewers import lower_priority
    done = threading.Event()
    before = threading.Thread(target=done.wait)  # as rerun's and the DDS threads, started before the call
    before.start()
    lower_priority()
    after = threading.Thread(target=done.wait)  # threads started later inherit it
    after.start()
    for tid in (os.getpid(), before.native_id, after.native_id):
        sched = Path(f"/proc/self/task/{tid}/sched").read_text().splitlines()
        slice_ns = next((int(line.split()[-1]) for line in sched if line.startswith("se.slice")), -1)
        print("thread", os.getpriority(os.PRIO_PROCESS, tid), os.sched_getscheduler(tid), slice_ns)
    group = Path("/proc/self/autogroup")
    print("autogroup", group.read_text().split()[-1] if group.is_file() else "none")
    done.set()
""")


def kernel_at_least(major: int, minor: int) -> bool:
    version = os.uname().release.split("-")[0].split(".")
    return (int(version[0]), int(version[1])) >= (major, minor)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling")
def test_every_viewer_thread_is_niced_and_lets_go_of_the_cpu_at_once():
    # A session of its own, as the dexndm runner starts every node: the group's nice is set too.
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60,
                         start_new_session=True)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line.split() for line in out.stdout.splitlines()]
    threads = [tuple(map(int, line[1:])) for line in lines if line[0] == "thread"]
    assert len(threads) == 3
    expected_nice = min(os.getpriority(os.PRIO_PROCESS, 0) + NICE, 19)  # relative to the nice it starts at
    for nice, policy, slice_ns in threads:
        assert nice == expected_nice and policy == os.SCHED_OTHER
        if kernel_at_least(6, 12):  # custom slices of fair tasks (EEVDF)
            assert slice_ns == SLICE_NS
    group = next(line[1] for line in lines if line[0] == "autogroup")
    if group != "none" and Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
        assert int(group) == NICE
