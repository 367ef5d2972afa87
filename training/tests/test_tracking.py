"""Tracking error between the worlds: deterministic pairs of runs, and a residual changes only the target run."""
from pathlib import Path

import numpy as np

from dexndm_training import cli, tracking
from dexndm_training.rollout import OnnxPolicy

POLICY = Path(__file__).resolve().parents[2] / "src" / "dexndm_policy" / "models" / "generalist.onnx"


def test_worlds_differ_a_zero_residual_changes_nothing_and_a_bad_one_hurts():
    cfg = tracking.TrackingConfig(wrist="palm_down", object="none", episodes=2, steps=25, threads=1)
    policy = OnnxPolicy(POLICY)
    zero = tracking.tracking_error(policy, cfg, residual=lambda obs, base: np.zeros_like(base))
    assert zero["direct"]["track_err"] > 1e-3  # the target world's servos do not follow like the source PD
    assert zero["residual"]["track_err"] == zero["direct"]["track_err"]  # same starts, deterministic worlds
    # a constant 0.3 rad offset on every joint: well above the direct error of any generalist shipped so far
    # (0.067 rad here for the default of 2026-12-07; 0.15 rad was too little for it)
    bad = tracking.tracking_error(policy, cfg, residual=lambda obs, base: np.full_like(base, 0.3),
                                  compare_direct=False)
    assert "direct" not in bad and bad["residual"]["track_err"] > 2 * zero["direct"]["track_err"]
    assert abs(bad["residual"]["mean_abs_residual"] - 0.3) < 1e-6


def test_cli_prints_the_errors_and_the_rotation_metrics(capsys, tmp_path):
    assert cli.main(["tracking", "--policy", str(POLICY), "--wrist", "palm_up", "--episodes", "1", "--steps", "5",
                     "--threads", "1", "--json", str(tmp_path / "t.json")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split())
    assert list(fields)[:2] == ["direct_track_err_rad", "source_rot_rad"] and fields["episodes"] == "1"
    assert 0.0 <= float(fields["direct_ttf"]) <= 1.0 and np.isfinite(float(fields["direct_rot_rad"]))
