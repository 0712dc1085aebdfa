# Shell code the launchers share; sourced by them, not run. Each launcher sets `bin`, `config` and the
# `overrides` array (--set key=value pairs) before calling these.

# config_value KEY: the value KEY resolves to for $config with the launcher's overrides (file, then --set,
# then the default), asked of the binary itself (`dppo config get`), so the launcher sees exactly what the
# jobs will. An invalid config fails here, before anything starts.
config_value() {
  "$bin" config get --config "$config" "${overrides[@]}" "$1"
}

# new_run_dir: creates a fresh run directory for $config, runs/<name>/<UTC time>-s<seed> (a suffix when the
# name is taken: mkdir is atomic, so launchers started in the same second never share one), and prints it.
new_run_dir() {
  "$bin" config run-dir --config "$config" "${overrides[@]}"
}

# stop_pids PID...: asks each process to stop (SIGTERM), waits up to 5 s for each, then kills what is left.
stop_pids() {
  stop_pids_within 5 "$@"
}

# stop_pids_within SECONDS PID...: the same with another wait. The learner gets 20 s: on SIGTERM it checkpoints,
# writes summary.json and tells its actors to shut down, within 10 s (docs/configuration.md, Stopping a run).
stop_pids_within() {
  local seconds=$1 pid
  shift
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq $((seconds * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
