#!/usr/bin/env python3
"""Checks that a change left a run's results unchanged: compares two output folders of
scripts/behaviour-runs.sh (before and after, same machine).

Identical means:
- every metrics.jsonl record has the same keys and values, except fields that measure time or depend on
  thread timing (VOLATILE below: wall and step-rate figures, queue depths, actors' heartbeat rates);
- every checkpoint (*.safetensors) holds the same tensors, byte for byte, and its JSON sidecar the same
  values except wall time (sidecar keys compared in snake_case, so a camelCase sidecar of an earlier version
  matches its snake_case successor);
- summary.json the same values except wall time and the provenance fields (dppo, config_hash, started_from);
  keys only the newer summary has are listed as notes, not differences.

Exit status 0 when identical, 1 with one line per difference otherwise.

    scripts/check_unchanged.py BEFORE AFTER
"""
import json
import re
import struct
import sys
from pathlib import Path

# Fields that measure time (durations, and the manifests' created_at clock time), or that come from heartbeats and queue states whose timing varies, not from what was
# computed: wall and step-rate figures, the actors' heartbeat reports, the receive queue at batch start.
# Also the record of what produced a run (the binary's version and commit, its config hash, the checkpoint it started
# from), which names the build rather than describing the results.
VOLATILE = re.compile(
    r"^(wall_seconds|wallSeconds|perf/.*|actors/.*|transport/(bytes_per_second|queue_depth|connected_actors|"
    r"chain_rebuild_seconds)|created_at|dppo|config_hash|started_from)$")


def read_safetensors(path):
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        tensors[name] = (entry["dtype"], tuple(entry["shape"]), body[start:end])
    return tensors, header.get("__metadata__", {})


def stable(value, root=""):
    """A JSON value with its volatile fields removed and the output folder's path replaced, recursively."""
    if isinstance(value, dict):
        return {k: stable(v, root) for k, v in value.items() if not VOLATILE.match(k)}
    if isinstance(value, list):
        return [stable(v, root) for v in value]
    if isinstance(value, str) and root:
        return value.replace(root, "<out>")
    return value


def snake_keys(value):
    """A sidecar with its field names in snake_case (`policyVersion` -> `policy_version`, `useDDIM` -> `use_ddim`);
    the keys of dropped_segments are drop reasons, not field names, and stay as they are."""
    if not isinstance(value, dict):
        return [snake_keys(v) for v in value] if isinstance(value, list) else value
    result = {}
    for key, child in value.items():
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", key).lower()
        result[name] = child if name == "dropped_segments" else snake_keys(child)
    return result


def metadata_values(metadata):
    """Safetensors metadata, with values that hold JSON parsed (their key order is not part of the content)."""
    parsed = {}
    for key, text in metadata.items():
        try:
            parsed[key] = json.loads(text)
        except ValueError:
            parsed[key] = text
    return parsed


# Keys a newer summary.json has and an older one lacks: reported, not counted as differences (a summary may gain
# fields; metrics and checkpoints may not).
notes = []


def compare_json(before, after, label, problems, roots=("", "")):
    a, b = stable(before, roots[0]), stable(after, roots[1])
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a and label.endswith("summary.json"):
                notes.append(f"{label}: {key} added ({b[key]!r})")
                continue
            if a.get(key, "<missing>") != b.get(key, "<missing>"):
                problems.append(f"{label}: {key}: {a.get(key, '<missing>')!r} != {b.get(key, '<missing>')!r}")
    else:
        problems.append(f"{label}: {a!r} != {b!r}")


def compare(before_root, after_root):
    problems = []
    roots = (str(before_root.resolve()), str(after_root.resolve()))
    files = sorted(p.relative_to(before_root) for p in before_root.rglob("*") if p.is_file())
    compared = 0
    for relative in files:
        before, after = before_root / relative, after_root / relative
        if relative.suffix not in (".jsonl", ".safetensors", ".json"):
            continue
        if not after.exists():
            problems.append(f"{relative}: missing after")
            continue
        compared += 1
        if relative.suffix == ".jsonl":
            a = [json.loads(line) for line in before.read_text().splitlines() if line.strip()]
            b = [json.loads(line) for line in after.read_text().splitlines() if line.strip()]
            if len(a) != len(b):
                problems.append(f"{relative}: {len(a)} records before, {len(b)} after")
            for index, (x, y) in enumerate(zip(a, b)):
                compare_json(x, y, f"{relative} record {index + 1}", problems, roots)
        elif relative.suffix == ".safetensors":
            (ta, ma), (tb, mb) = read_safetensors(before), read_safetensors(after)
            if set(ta) != set(tb):
                problems.append(f"{relative}: tensors {sorted(set(ta) ^ set(tb))} in only one file")
            for name in sorted(set(ta) & set(tb)):
                if ta[name] != tb[name]:
                    problems.append(f"{relative}: tensor {name} differs")
            compare_json(metadata_values(ma), metadata_values(mb), f"{relative} metadata", problems, roots)
        elif before.with_suffix(".safetensors").exists():
            compare_json(snake_keys(json.loads(before.read_text())), snake_keys(json.loads(after.read_text())), str(relative),
                         problems, roots)
        else:
            compare_json(json.loads(before.read_text()), json.loads(after.read_text()), str(relative), problems, roots)
    return compared, problems


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    compared, problems = compare(before, after)
    for note in notes:
        print("note:", note)
    for problem in problems:
        print(problem)
    if compared == 0:
        print(f"no metrics, checkpoints or JSON files under {before}")
        return 1
    print(f"check_unchanged: {compared} files compared, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
