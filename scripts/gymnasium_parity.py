#!/usr/bin/env python3
"""Records Gymnasium MuJoCo locomotion rollouts for the Swift parity tests (GymnasiumParityTests).

For each task and version it writes the path of Gymnasium's own model file and, for every step of a few
episodes driven by seeded uniform random actions, the full simulator state before the step (qpos, qvel and
MuJoCo's solver warm start), the action, and what Gymnasium returned (observation, reward, terminated) plus
the state after it. The Swift side loads the same model file, restores each recorded state, applies the same
action and compares.

    python3 scripts/gymnasium_parity.py --steps 300 --seed 0 --output /tmp/parity.json

Needs gymnasium and mujoco from PyPI (scripts/requirements-test.txt pins the versions CI uses).
"""
import argparse
import json
import os
import sys

TASKS = ["Hopper-v4", "Hopper-v5", "Walker2d-v4", "Walker2d-v5", "HalfCheetah-v4", "HalfCheetah-v5"]


def record(env_id, steps, seed):
    import gymnasium
    import numpy as np

    env = gymnasium.make(env_id)
    raw = env.unwrapped
    model_path = raw.fullpath
    rng = np.random.default_rng(seed)
    observation, _ = env.reset(seed=seed)
    episode_starts = [{"step": 0, "qpos": raw.data.qpos.tolist(), "qvel": raw.data.qvel.tolist(), "observation": observation.tolist()}]
    records = []
    low, high = env.action_space.low, env.action_space.high
    for step in range(steps):
        before = {"qpos": raw.data.qpos.tolist(), "qvel": raw.data.qvel.tolist(), "warmstart": raw.data.qacc_warmstart.tolist()}
        # Actions slightly beyond the control range too, to cover MuJoCo's clamping and the unclamped control cost.
        action = rng.uniform(1.2 * low, 1.2 * high).astype(np.float32)
        observation, reward, terminated, truncated, _ = env.step(action)
        records.append({
            **before,
            "action": action.tolist(),
            "observation": observation.tolist(),
            "reward": float(reward),
            "terminated": bool(terminated),
            "qpos_after": raw.data.qpos.tolist(),
            "qvel_after": raw.data.qvel.tolist(),
        })
        if terminated or truncated:
            observation, _ = env.reset()
            episode_starts.append({"step": step + 1, "qpos": raw.data.qpos.tolist(), "qvel": raw.data.qvel.tolist(),
                                   "observation": observation.tolist()})
    env.close()
    return {"id": env_id, "model_path": model_path, "frame_skip": raw.frame_skip, "dt": raw.dt,
            "episode_starts": episode_starts, "steps": records}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", default=TASKS)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    try:
        import gymnasium
        import mujoco
    except ImportError as error:
        sys.exit(f"gymnasium_parity.py: {error}; install with: pip install -r scripts/requirements-test.txt")
    result = {"gymnasium_version": gymnasium.__version__, "mujoco_version": mujoco.__version__,
              "tasks": [record(task, args.steps, args.seed) for task in args.tasks]}
    with open(args.output, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
