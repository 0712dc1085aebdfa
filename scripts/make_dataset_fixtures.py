#!/usr/bin/env python3
"""Writes the small .npy/.npz files that Tests/DatasetsTests reads (numpy only).

Run from the repository root: python3 scripts/make_dataset_fixtures.py
The files are committed; rerun this only to change them, and update the tests' expected values.

The reference-style files follow the DPPO reference's script/dataset/get_d4rl_dataset.py: train.npz
is written by np.savez_compressed and holds states and actions already normalised with the statistics
in normalization.npz (written by np.savez), x_n = 2 (x - min) / (max - min + 1e-6) - 1, in float32.
"""

import os

import numpy as np

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "DatasetsTests", "Fixtures")

# Two episodes of 4 and 3 steps; Do = 2, Da = 1. Values in environment units.
RAW_STATES = np.array([[0, 10], [1, 12], [2, 14], [3, 16], [4, 10], [2, 11], [0, 13]], dtype=np.float32)
RAW_ACTIONS = np.array([[-2], [0], [2], [1], [-1], [0], [1]], dtype=np.float32)
REWARDS = np.array([1, 1, 1, 1, 0.5, 0.5, 2], dtype=np.float32)
# The first episode ends on a time limit, the second in a terminal state.
TERMINALS = np.array([False, False, False, False, False, False, True])
TRAJ_LENGTHS = np.array([4, 3])  # int64, as np.array of Python ints gives


def normalized(values, minimum, maximum):
    return 2 * (values - minimum) / (maximum - minimum + np.float32(1e-6)) - 1


def reference_arrays():
    obs_min, obs_max = RAW_STATES.min(axis=0), RAW_STATES.max(axis=0)
    action_min, action_max = RAW_ACTIONS.min(axis=0), RAW_ACTIONS.max(axis=0)
    train = dict(
        states=normalized(RAW_STATES, obs_min, obs_max),
        actions=normalized(RAW_ACTIONS, action_min, action_max),
        rewards=REWARDS,
        terminals=TERMINALS,
        traj_lengths=TRAJ_LENGTHS,
    )
    statistics = dict(obs_min=obs_min, obs_max=obs_max, action_min=action_min, action_max=action_max)
    return train, statistics


def path(name):
    return os.path.join(FIXTURES, name)


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    train, statistics = reference_arrays()
    np.savez_compressed(path("train.npz"), **train)
    np.savez(path("normalization.npz"), **statistics)
    np.savez(path("train_stored.npz"), **train)

    # Every supported dtype, a scalar and an empty array, stored (np.savez).
    np.savez(
        path("dtypes.npz"),
        float32=np.arange(6, dtype="<f4").reshape(2, 3),
        float64=np.array([0.5, -1.25], dtype="<f8"),
        int32=np.array([-1, 0, 7], dtype="<i4"),
        int64=np.array([2**40, -5], dtype="<i8"),
        uint8=np.array([0, 255], dtype="u1"),
        bool=np.array([True, False, True]),
        scalar=np.float64(3.5),
        empty=np.zeros((0, 4), dtype="<f4"),
    )
    # Layouts the reader refuses, each with a message naming the array.
    np.savez(
        path("unsupported.npz"),
        fortran=np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)),
        objects=np.array([{"a": 1}, None], dtype=object),
        big_endian=np.arange(3, dtype=">f4"),
    )
    # Header format versions 2.0 and 3.0 (4-byte header length; 3.0 allows UTF-8).
    for version in [(2, 0), (3, 0)]:
        with open(path(f"version{version[0]}.npy"), "wb") as file:
            np.lib.format.write_array(file, np.arange(6, dtype="<f4").reshape(3, 2), version=version)

    # Malformed reference files.
    broken = dict(train)
    broken["states"] = train["states"].copy()
    broken["states"][5, 1] = np.nan
    np.savez_compressed(path("nan_states.npz"), **broken)
    np.savez_compressed(path("lengths_mismatch.npz"), **{**train, "traj_lengths": np.array([4, 4])})
    np.savez_compressed(path("missing_actions.npz"), **{key: value for key, value in train.items() if key != "actions"})
    with open(path("train.npz"), "rb") as file:
        complete = file.read()
    with open(path("truncated.npz"), "wb") as file:
        file.write(complete[: len(complete) // 2])


if __name__ == "__main__":
    main()
