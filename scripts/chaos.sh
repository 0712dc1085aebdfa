#!/usr/bin/env bash
# A chaos run: the embedded default config (or CONFIG) as a local cluster whose processes are SIGKILLed at random
# while it trains. Every 20–40 s a random actor is killed and started again with its index; at a third and at two
# thirds of the chaos time the learner is killed and started again with --resume. After MINUTES the chaos stops and
# the run is left to finish. Then it checks that the run completed, that metrics.jsonl has exactly one record per
# iteration, and that every batch was complete (each iteration added exactly actors × n_envs × n_steps × act_steps
# environment steps). Every process is started and stopped by its PID. Not part of CI; figures in BENCHMARKS.md.
#
#   scripts/chaos.sh OUT [MINUTES=20] [--bin PATH] [--config CONFIG] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 OUT [MINUTES] [--bin PATH] [--config CONFIG] [--set key=value ...]" >&2; exit 2; }
out=$1; shift
minutes=20
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then minutes=$1; shift; fi
bin=.build/release/dppo
config=configs/pendulum/finetune.yaml
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "chaos: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -e "$out" ] && { echo "chaos: $out exists; give a new folder" >&2; exit 2; }
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
run=$out/run
sets+=(--set train.save_model_freq=1 --set cluster.base_port=5855 --set cluster.batch_timeout_s=300)
value() { "$bin" config get --config "$config" "${sets[@]}" "$1"; }
actors=$(value cluster.actors)
per_iteration=$(( actors * $(value env.n_envs) * $(value train.n_steps) * $(value env.act_steps) ))
iterations=$(value train.n_train_itr)

echo "chaos: pre-training"
"$bin" pretrain --config "$config" "${sets[@]}" --output "$out/pretrain" > "$out/logs/pretrain.log" 2>&1
learner=""
actor_pids=()
stop_all() {
  for pid in "$learner" "${actor_pids[@]}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
start_learner() {
  if [ -d "$run/checkpoints" ] && ls "$run/checkpoints"/*.json > /dev/null 2>&1; then
    "$bin" learner --config "$config" "${sets[@]}" --resume "$run" >> "$out/logs/learner.log" 2>&1 &
  else
    "$bin" learner --config "$config" "${sets[@]}" --run-dir "$run" --base-policy "$out/pretrain/pretrained.safetensors" >> "$out/logs/learner.log" 2>&1 &
  fi
  learner=$!
}
start_actor() {
  "$bin" actor --config "$config" "${sets[@]}" --index "$1" >> "$out/logs/actor-$1.log" 2>&1 &
  actor_pids[$1]=$!
}
start_learner
for ((i = 0; i < actors; i++)); do start_actor "$i"; done

started=$(date +%s)
chaos_end=$((started + minutes * 60))
learner_kills=("$((started + minutes * 20))" "$((started + minutes * 40))")
kills=0; learner_restarts=0
next=$((started + 20 + RANDOM % 21))
echo "chaos: $minutes min of kills, then the run finishes ($iterations iterations, $per_iteration env steps each)"
while [ "$(date +%s)" -lt "$chaos_end" ]; do
  now=$(date +%s)
  if [ "${#learner_kills[@]}" -gt 0 ] && [ "$now" -ge "${learner_kills[0]}" ]; then
    kill -9 "$learner" 2>/dev/null || true
    wait "$learner" 2>/dev/null || true
    learner_kills=("${learner_kills[@]:1}")
    learner_restarts=$((learner_restarts + 1))
    echo "chaos: $(date -u +%T) SIGKILL learner; resuming (restart $learner_restarts)"
    start_learner
  fi
  if [ "$now" -ge "$next" ]; then
    index=$((RANDOM % actors))
    kill -9 "${actor_pids[$index]}" 2>/dev/null || true
    wait "${actor_pids[$index]}" 2>/dev/null || true
    kills=$((kills + 1))
    echo "chaos: $(date -u +%T) SIGKILL actor $index (kill $kills); starting it again"
    start_actor "$index"
    next=$((now + 20 + RANDOM % 21))
  fi
  if ! kill -0 "$learner" 2>/dev/null; then
    if [ -f "$run/summary.json" ] && grep -Eq '"state" ?: ?"finished"' "$run/summary.json"; then break; fi
    echo "chaos: the learner exited by itself; see $out/logs/learner.log" >&2
    exit 1
  fi
  sleep 1
done
echo "chaos: $(date -u +%T) chaos over ($kills actor kills, $learner_restarts learner restarts); waiting for the run to finish"
wait "$learner" || { echo "chaos: the learner failed; see $out/logs/learner.log" >&2; exit 1; }

python3 - "$run" "$iterations" "$per_iteration" <<'PY'
import json, sys
run, iterations, per_iteration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
records = [json.loads(line) for line in open(f"{run}/metrics.jsonl") if line.strip()]
seen = [r["iteration"] for r in records]
assert seen == list(range(iterations + 1)), f"iterations in metrics.jsonl: {seen[:10]}… ({len(seen)} records)"
for r in records:
    assert r["env_steps"] == r["iteration"] * per_iteration, f"iteration {r['iteration']}: {r['env_steps']} env steps"
summary = json.load(open(f"{run}/summary.json"))
assert summary["state"] == "finished" and summary["env_steps"] == iterations * per_iteration, summary
dropped = summary.get("dropped_segments", {})
print(f"chaos: ok: {iterations} iterations, each once in metrics.jsonl with exactly {per_iteration} env steps; "
      f"final eval {summary['final_eval_return']:.1f}; dropped segments {dropped}; redo requests {summary.get('redo_requests')}")
PY
