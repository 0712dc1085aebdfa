#!/usr/bin/env bash
# A soak run: the embedded default config as a local cluster (cluster/launch.sh) for MINUTES, with the resident
# memory (VmRSS) of the learner and of each actor sampled every minute into OUT/rss.csv. At the end the launcher
# is stopped with SIGTERM (the learner checkpoints) and each process's last sample is compared with its sample at
# minute 5: the check passes when every one is within 10%. Processes are found as the launcher's children, by PID.
# Not part of CI; figures in BENCHMARKS.md.
#
#   scripts/soak.sh OUT [MINUTES=60] [--bin PATH] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 OUT [MINUTES] [--bin PATH] [--set key=value ...]" >&2; exit 2; }
out=$1; shift
minutes=60
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then minutes=$1; shift; fi
bin=.build/release/dppo
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "soak: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -e "$out" ] && { echo "soak: $out exists; give a new folder" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
cluster/launch.sh configs/pendulum/finetune.yaml --bin "$bin" --run-dir "$out/run" --set train.n_train_itr=100000 \
  --set cluster.base_port=5875 "${sets[@]+"${sets[@]}"}" > "$out/launch.log" 2>&1 &
launcher=$!
trap 'kill "$launcher" 2>/dev/null || true' EXIT

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo ""; }
# The learner and actors: children of the launcher whose command line is `dppo learner` or `dppo actor --index I`.
roles() {
  local pid args
  for pid in $(ps -o pid= --ppid "$launcher"); do
    args=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
    case "$args" in
      *" learner "*) echo "learner $pid" ;;
      *" actor "*) echo "actor-$(sed -E 's/.*--index ([0-9]+).*/\1/' <<< "$args") $pid" ;;
    esac
  done
}
echo "minute,process,pid,rss_kib" > "$out/rss.csv"
# The first samples once the learner has finished pre-training and started.
for _ in $(seq 600); do [ -n "$(roles | grep learner || true)" ] && break; sleep 1; done
started=$(date +%s)
for ((minute = 0; minute <= minutes; minute++)); do
  while [ $(( $(date +%s) - started )) -lt $((minute * 60)) ]; do sleep 1; done
  kill -0 "$launcher" 2>/dev/null || { echo "soak: the cluster stopped at minute $minute; see $out/launch.log" >&2; exit 1; }
  while read -r role pid; do echo "$minute,$role,$pid,$(rss "$pid")" >> "$out/rss.csv"; done < <(roles)
done
kill -TERM "$launcher"
wait "$launcher" || true
trap - EXIT
python3 - "$out/rss.csv" "$minutes" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
minutes = int(sys.argv[2])
ok = True
for process in sorted({r["process"] for r in rows}):
    samples = {int(r["minute"]): int(r["rss_kib"]) for r in rows if r["process"] == process and r["rss_kib"]}
    if 5 not in samples or minutes not in samples:
        print(f"soak: {process}: no sample at minute 5 or {minutes} (restarted?)"); ok = False; continue
    change = samples[minutes] / samples[5] - 1
    peak = max(v for m, v in samples.items() if m >= 5)
    print(f"soak: {process}: {samples[5] / 1024:.1f} MiB at minute 5, {samples[minutes] / 1024:.1f} MiB at minute {minutes} "
          f"({change:+.1%}), peak after minute 5 {peak / 1024:.1f} MiB")
    ok &= abs(change) <= 0.10
print("soak: ok: every process within 10% of its minute-5 size" if ok else "soak: FAILED: a process grew or shrank by more than 10%")
sys.exit(0 if ok else 1)
PY
