"""The recorder core against a real rerun file sink, read back with rerun's dataframe API: one row per
state with the answers that joined it (also late or early ones), rows held until complete."""
import math

import numpy as np
import pytest
import rerun as rr

from dexndm_description import hand
from dexndm_description.wrist import parse_wrist, quat_to_matrix
from dexndm_viz import recorder as recorder_module
from dexndm_viz.readback import summarize, values
from dexndm_viz.recorder import HandRecorder

PERIOD_NS = 50_000_000
TICKS = 60
UNANSWERED = 10  # this state never gets a command
TURN = 0.02  # rad per tick about the world z axis


def record(path, ticks=TICKS, flush_every=7):
    stream = rr.RecordingStream("dexndm_test")
    stream.save(str(path))
    wrist = parse_wrist("palm_up")
    axis_palm = quat_to_matrix(wrist).T @ np.array([0.0, 0.0, 1.0])  # world z in the palm frame
    rec = HandRecorder(stream, "normal_cylinder", "palm_up", axis_palm)
    qs = hand.CANONICAL_POSE + 0.2 * np.sin(0.1 * np.arange(ticks))[:, None]
    late = None
    for k in range(ticks):
        stamp = k * PERIOD_NS
        pose = ([0.0, 0.0, 0.4], [0.0, 0.0, math.sin(TURN * k / 2), math.cos(TURN * k / 2)])
        if k % 5 == 2:  # the pose overtakes its state
            rec.add_object_pose(stamp, *pose)
        rec.add_state((("tick", "sequence", k), ("driver_time", "duration", stamp * 1e-9)), stamp, qs[k])
        if k % 5 != 2:
            rec.add_object_pose(stamp, *pose)
        if late is not None:  # the previous command arrives after this state (topics are not ordered)
            rec.add_command(late, qs[late // PERIOD_NS] + 0.01, 1.5)
            late = None
        if k != UNANSWERED:
            rec.add_step(stamp, qs[k], np.full(16, 0.001), qs[k] + 0.01, axis_palm, 0.2)
            late = stamp
        if k % flush_every == flush_every - 1:
            rec.flush()
        if k % 20 == 0:
            rec.log_diagnostics([(0, "hand_driver: bus", "ok", {"ticks": str(k), "port": "/dev/null"})])
    assert rec.pending > 0  # the newest row waits for its command
    rec.add_command(late, qs[-1] + 0.01, 1.5)
    rec.flush(final=True)
    stream.flush()
    stream.disconnect()
    return rec, qs


def test_every_state_becomes_one_row_with_its_answers(tmp_path):
    rec, qs = record(tmp_path / "run.rrd")
    assert rec.stats.rows_sent == TICKS and rec.stats.unmatched == 0
    summary = summarize(tmp_path / "run.rrd", "tick")
    assert {"tick", "driver_time"} <= set(summary.timelines) and sorted(summary.index) == list(range(TICKS))
    for name in hand.JOINT_NAMES:
        assert summary.count(f"/joints/{name}", "Scalars:scalars") == TICKS, name
    geometry = rec.geometry
    for link in geometry.links:  # the palm (the frame itself) and 16 moving links, each with its geoms below it
        if link != "palm":
            assert summary.count(f"/world/palm/links/{link}", "Transform3D:translation") == TICKS, link
        for geom in geometry.geoms[link]:
            assert f"/world/palm/links/{link}/{geom.name}" in summary.entities(), geom.name
    assert summary.count("/world/object", "Transform3D:quaternion") == TICKS
    assert summary.count("/diagnostics/hand_driver_bus/ticks", "Scalars:scalars") == 3
    assert summary.count("/diagnostics/hand_driver_bus/port", "Scalars:scalars") == 0  # not a number

    ticks, rows = values(tmp_path / "run.rrd", "tick", "/joints/if_abd", "Scalars:scalars")
    rows = dict(zip(ticks, rows))
    for k in range(TICKS):
        position, executed, base, residual = rows[k]
        assert position == pytest.approx(qs[k, 0])
        if k == UNANSWERED:
            assert math.isnan(executed) and math.isnan(base) and math.isnan(residual)
        else:
            assert executed == pytest.approx(qs[k, 0] + 0.01) and residual == pytest.approx(0.001)
    _, timing = values(tmp_path / "run.rrd", "tick", "/policy/timing", "Scalars:scalars")
    assert len(timing) == TICKS - 1 and all(t == pytest.approx([1.5, 0.2]) for t in timing)
    ticks, angle = values(tmp_path / "run.rrd", "tick", "/rotation/about_axis", "Scalars:scalars")
    assert dict(zip(ticks, angle))[TICKS - 1][0] == pytest.approx(TURN * (TICKS - 1), rel=1e-6)


def test_a_row_whose_answer_never_comes_is_sent_once_enough_rows_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder_module, "MAX_PENDING_ROWS", 5)
    stream = rr.RecordingStream("dexndm_test")
    stream.save(str(tmp_path / "held.rrd"))
    rec = HandRecorder(stream)
    sent = []
    for k in range(12):
        rec.add_state((("tick", "sequence", k),), k, hand.CANONICAL_POSE)
        if k > 0:
            rec.add_command(k, hand.CANONICAL_POSE)  # state 0 is never answered
        sent.append(rec.flush())
    assert sent == [0, 0, 0, 0, 0, 6, 1, 1, 1, 1, 1, 1]  # state 0 holds the rest back until 5 wait behind it
    assert rec.pending == 0 and rec.stats.rows_sent == 12
