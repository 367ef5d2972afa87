"""Replay sources: the paper's wave parameters, seeded determinism, per-step noise, limits, file formats."""
import json

import numpy as np
import pytest

from dexndm_collect.sources import SourceError, ReplaySource
from dexndm_description import hand


def moving_joint(targets):
    return int(np.argmax(np.ptp(targets, axis=0)))


@pytest.mark.parametrize("kind", ["sine", "square", "square_noise"])
def test_base_waves_move_one_joint_about_mid_range(kind):
    src = ReplaySource(kind, steps=400, seed=3, noise_sigma=0.0)
    for episode in range(6):
        targets = src.episode(episode)
        assert targets.shape == (400, 16) and hand.within_limits(targets)
        joint = moving_joint(targets)
        others = np.delete(np.arange(16), joint)
        np.testing.assert_allclose(targets[:, others], np.tile(hand.MID[others], (400, 1)))
        offset = targets[:, joint] - hand.MID[joint]
        unclipped = (targets[:, joint] > hand.LOWER[joint] + 1e-9) & (targets[:, joint] < hand.UPPER[joint] - 1e-9)
        amplitude = np.max(np.abs(offset[unclipped]))
        assert 0.5 - 0.05 <= amplitude <= 1.0 + 0.05
        if kind == "square":
            assert set(np.round(np.abs(offset[unclipped][1:]), 9)) <= {round(amplitude, 9)}


def test_sine_follows_sigma_sin_2_omega_t():
    targets = ReplaySource("sine", steps=400, seed=11, noise_sigma=0.0).episode(0)
    joint = moving_joint(targets)
    y = targets[:, joint] - hand.MID[joint]
    t = np.arange(400) * hand.CONTROL_DT
    best = min(((np.abs(s * np.sin(2 * w * t) - y).max(), s, w)
                for s in np.linspace(0.5, 1.0, 51) for w in np.linspace(0.2, 0.5, 301)), key=lambda r: r[0])
    inside = (targets[:, joint] > hand.LOWER[joint]) & (targets[:, joint] < hand.UPPER[joint])
    assert np.abs(best[1] * np.sin(2 * best[2] * t) - y)[inside].max() < 0.02


def test_seeded_per_episode_and_independent_of_order():
    a, b = ReplaySource("sine", seed=5), ReplaySource("sine", seed=5)
    np.testing.assert_array_equal(a.episode(7), b.episode(7))
    b.episode(0)
    np.testing.assert_array_equal(a.episode(3), b.episode(3))
    assert not np.array_equal(a.episode(1), a.episode(2))
    assert not np.array_equal(a.episode(1), ReplaySource("sine", seed=6).episode(1))


def test_noise_is_per_step_with_the_given_probability_and_sigma():
    clean = ReplaySource("sine", seed=1, noise_sigma=0.0).episode(0)
    noisy = ReplaySource("sine", seed=1).episode(0)
    diff = noisy - clean
    inside = (clean > hand.LOWER + 0.05) & (clean < hand.UPPER - 0.05)
    touched = np.any(np.abs(diff) > 0, axis=1)
    assert 0.4 < touched.mean() < 0.6  # per step, probability 0.5
    assert 0.008 < diff[touched][inside[touched]].std() < 0.012


def test_targets_are_clipped_to_limits(tmp_path):
    table = np.tile(hand.UPPER + 1.0, (10, 1))
    np.save(tmp_path / "t.npy", table)
    out = ReplaySource("file", steps=4, path=str(tmp_path / "t.npy")).episode(0)
    np.testing.assert_allclose(out, np.tile(hand.UPPER, (4, 1)))


def test_file_source_reads_npy_and_csv_windows(tmp_path):
    table = np.linspace(0.0, 0.3, 10 * 16).reshape(10, 16)
    np.save(tmp_path / "t.npy", table)
    np.savetxt(tmp_path / "t.csv", table, delimiter=",")
    for name in ("t.npy", "t.csv"):
        src = ReplaySource("file", steps=4, path=str(tmp_path / name), noise_sigma=0.0)
        np.testing.assert_allclose(src.episode(1), table[4:8])
        np.testing.assert_allclose(src.episode(2), table[[8, 9, 0, 1]])  # wraps around


@pytest.mark.parametrize("content,match", [("1,2,3\n", "expected"), ("nan," * 15 + "nan\n", "NaN")])
def test_file_source_rejects_bad_files_with_a_clear_error(tmp_path, content, match):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(SourceError, match=match):
        ReplaySource("file", path=str(tmp_path / "bad.csv"))
    with pytest.raises(SourceError, match="source_path"):
        ReplaySource("file", path=str(tmp_path / "missing.npy"))
    with pytest.raises(SourceError, match="choose one of"):
        ReplaySource("zigzag")


def write_rollouts(path, wrists, lengths):
    rows = sum(lengths)
    base = np.zeros((rows, 16), np.float32)
    episodes, start = [], 0
    for i, (w, n) in enumerate(zip(wrists, lengths)):
        base[start:start + n] = hand.CANONICAL_POSE + 0.01 * i
        episodes.append({"index": i, "start": start, "length": n, "wrist": w, "success": True})
        start += n
    path.mkdir()
    np.save(path / "base_target.npy", base)
    np.save(path / "target.npy", base + 0.5)
    (path / "index.json").write_text(json.dumps({"layout_version": 1, "episodes": episodes}))


def test_sim_rollouts_replay_base_targets_of_one_wrist(tmp_path):
    write_rollouts(tmp_path / "ds", ["palm_up", "palm_down", "palm_up"], [400, 400, 300])
    src = ReplaySource("sim_rollouts", path=str(tmp_path / "ds"), wrist="palm_up", noise_sigma=0.0)
    seen = set()
    for k in range(6):
        ep = src.episode(k)
        offset = round(float(ep[0, 0] - hand.CANONICAL_POSE[0]) / 0.01)
        seen.add(offset)
        np.testing.assert_allclose(ep, np.tile(hand.CANONICAL_POSE + 0.01 * offset, (400, 1)), atol=1e-6)
    assert seen == {0, 2}  # base_target (not target), palm_up episodes only; the short one holds its last row
    with pytest.raises(SourceError, match="labels present"):
        ReplaySource("sim_rollouts", path=str(tmp_path / "ds"), wrist="thumb_up")
