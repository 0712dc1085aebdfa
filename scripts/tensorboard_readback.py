#!/usr/bin/env python3
"""Reads a run's TensorBoard event files (RUN/tb/) with TensorBoard's own EventAccumulator and prints every scalar
as JSON: {"tag": {"step": value, ...}, ...}. The tests compare this with metrics.jsonl.

    scripts/tensorboard_readback.py RUN_DIR
"""
import json
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    folder = Path(sys.argv[1]) / "tb"
    # size_guidance 0: keep every event (the default keeps a sample of 10,000 scalars per tag).
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    scalars = {tag: {str(event.step): event.value for event in accumulator.Scalars(tag)}
               for tag in accumulator.Tags()["scalars"]}
    json.dump(scalars, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
