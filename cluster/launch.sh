#!/usr/bin/env bash
# Starts a local cluster: (pre-training when the config names no checkpoint,) one learner and
# N actors, each logging into the run directory. Stops every process it started, by PID, on
# Ctrl-C, on error, or when the learner exits.
#
#   cluster/launch.sh CONFIG [--actors N] [--set key=value ...]
#   cluster/launch.sh CONFIG --resume RUN_DIR    # continue a run from its latest checkpoint (config changes that
#                                                # change the computation need --allow-changes)
#   cluster/launch.sh CONFIG --learner-ranks N   # the learner as N MPI processes (mpirun; docs/learner-scaling.md)
set -euo pipefail
# The body is one compound command, so bash reads all of it before running: editing this file while a
# run is going cannot change (or break) that run.
{

usage() { echo "usage: $0 CONFIG [--actors N] [--learner-ranks N] [--bin PATH] [--run-dir DIR | --resume DIR [--allow-changes]] [--set key=value ...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
config=$1; shift
actors=""
bin="${DPPO_BIN:-.build/release/dppo}"
run_dir=""
resume=""
ranks=1
allow_changes=()
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --actors) actors=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --run-dir) run_dir=$2; shift 2 ;;
    --resume) resume=$2; shift 2 ;;
    --learner-ranks) ranks=$2; shift 2 ;;
    --allow-changes) allow_changes=(--allow-changes); shift ;;
    --set) overrides+=(--set "$2"); shift 2 ;;
    *) usage ;;
  esac
done
[ -f "$config" ] || { echo "launch: config $config not found" >&2; exit 2; }
[ -x "$bin" ] || { echo "launch: $bin is not built (swift build -c release)" >&2; exit 2; }
[ -n "$actors" ] && overrides+=(--set "cluster.actors=$actors")
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || { echo "launch: --learner-ranks must be a whole number ≥ 1, got '$ranks'" >&2; exit 2; }
launcher=()
if [ "$ranks" -gt 1 ]; then
  command -v mpirun > /dev/null || { echo "launch: --learner-ranks needs mpirun (scripts/install-deps.sh installs openmpi-bin)" >&2; exit 2; }
  # --bind-to none: each rank runs its own worker threads; --oversubscribe: ranks may outnumber the cores here.
  launcher=(mpirun -np "$ranks" --bind-to none --oversubscribe)
  [ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ -n "$resume" ]; then
  [ -z "$run_dir" ] || { echo "launch: --resume continues the run in its own directory; drop --run-dir" >&2; exit 2; }
  [ -d "$resume/checkpoints" ] || { echo "launch: $resume is not a run directory (no checkpoints/)" >&2; exit 2; }
  run_dir=$resume
fi

# What the launcher needs from the resolved config (file, then --set, then defaults), from the binary.
source "$(dirname "$0")/lib.sh"
actors=$(config_value cluster.actors)
checkpoint=$(config_value pretrain.checkpoint)

[ -n "$run_dir" ] || run_dir=$(new_run_dir)
mkdir -p "$run_dir/logs"
echo "launch: run directory $run_dir"

pids=()
learner=""
cleanup() {
  trap - EXIT INT TERM
  [ -z "$learner" ] || stop_pids_within 20 "$learner"
  stop_pids ${pids[@]+"${pids[@]}"}
}
# Ctrl-C or SIGTERM: the learner checkpoints and stops its actors; the run continues with --resume.
on_signal() {
  echo "launch: stopping (the learner checkpoints first)" >&2
  cleanup
  if grep -Eq '"state" ?: ?"stopped"' "$run_dir/summary.json" 2>/dev/null; then
    echo "launch: stopped cleanly; continue with: cluster/launch.sh $config --resume $run_dir" >&2
    exit 0
  fi
  exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

if [ -n "$resume" ]; then
  learner_start=(--resume "$run_dir" ${allow_changes[@]+"${allow_changes[@]}"})
  echo "launch: resuming $run_dir from its latest checkpoint"
elif [ -z "$checkpoint" ]; then
  # In the background and waited for, so a signal reaches the launcher's trap (which stops it) at once.
  "$bin" pretrain --config "$config" "${overrides[@]}" --output "$run_dir/pretrain" > >(tee "$run_dir/logs/pretrain.log") 2>&1 &
  pids+=("$!")
  wait "$!"
  checkpoint="$run_dir/pretrain/pretrained.safetensors"
fi
[ -n "$resume" ] || learner_start=(--run-dir "$run_dir" --base-policy "$checkpoint")

# Logs are appended, so a resumed run keeps the history of the runs before it.
${launcher[@]+"${launcher[@]}"} "$bin" learner --config "$config" "${overrides[@]}" "${learner_start[@]}" \
  > >(tee -a "$run_dir/logs/learner.log") 2>&1 &
learner=$!
pids+=("$learner")
for ((i = 0; i < actors; i++)); do
  "$bin" actor --config "$config" "${overrides[@]}" --index "$i" >> "$run_dir/logs/actor-$i.log" 2>&1 &
  pids+=("$!")
done
echo "launch: learner pid $learner, $actors actors (logs in $run_dir/logs)"

status=0
wait "$learner" || status=$?
if [ $status -ne 0 ]; then
  echo "launch: learner exited with status $status; see $run_dir/logs" >&2
  for ((i = 0; i < actors; i++)); do tail -n 3 "$run_dir/logs/actor-$i.log" >&2 || true; done
  exit $status
fi
if [ -f "$run_dir/summary.json" ]; then
  echo "launch: summary ($run_dir/summary.json):"
  cat "$run_dir/summary.json"
fi
exit
}
