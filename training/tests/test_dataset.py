import json

import numpy as np
import pytest

from dexndm_training.dataset import Dataset, Episode, write_dataset


def make_episode(n, offset):
    q = np.arange(n * 16, dtype=np.float32).reshape(n, 16) / 1000 + offset
    return Episode(q=q, target=q + 0.01, next_q=q + 0.02, wrist=[0, 0, 0, 1], axis=[0, 0, 1], source="test")


def test_round_trip_keeps_episodes_contiguous_and_mmapped(tmp_path):
    path = write_dataset(tmp_path / "ds", [make_episode(5, 0.0), make_episode(3, 1.0)], provenance={"what": "test"})
    ds = Dataset(path)
    assert len(ds) == 8
    assert isinstance(ds["q"], np.memmap)
    np.testing.assert_array_equal(ds["episode"], [0] * 5 + [1] * 3)
    np.testing.assert_array_equal(ds["step"], [0, 1, 2, 3, 4, 0, 1, 2])
    np.testing.assert_allclose(ds["q"][ds.episode_slice(1)][0, 0], 1.0)
    np.testing.assert_allclose(ds["base_target"], ds["target"])  # no residual given
    assert json.loads((path / "index.json").read_text())["provenance"]["what"] == "test"


def test_refuses_overwrite_and_bad_shapes(tmp_path):
    write_dataset(tmp_path / "ds", [make_episode(2, 0.0)])
    with pytest.raises(FileExistsError):
        write_dataset(tmp_path / "ds", [make_episode(2, 0.0)])
    bad = make_episode(2, 0.0)
    bad.next_q = bad.next_q[:1]
    with pytest.raises(ValueError, match="next_q"):
        write_dataset(tmp_path / "bad", [bad])
    assert not (tmp_path / "bad").exists()


def test_split_is_by_episode_and_seeded(tmp_path):
    ds = Dataset(write_dataset(tmp_path / "ds", [make_episode(2, i) for i in range(20)]))
    train, val = ds.split_episodes(0.1, seed=3)
    assert len(val) == 2 and len(train) == 18 and not set(train) & set(val)
    assert np.array_equal(val, ds.split_episodes(0.1, seed=3)[1])


def test_missing_directory_says_what_to_check(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset directory"):
        Dataset(tmp_path / "nope")
