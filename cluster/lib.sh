# Shell code the launchers share; sourced by them, not run. Each launcher sets `bin`, `config` and the
# `overrides` array (--set key=value pairs) before calling these.

# config_value KEY: the value KEY resolves to for $config with the launcher's overrides (file, then --set,
# then the default), asked of the binary itself (`dppo config get`), so the launcher sees exactly what the
# jobs will. An invalid config fails here, before anything starts.
config_value() {
  "$bin" config get --config "$config" "${overrides[@]}" "$1"
}

# stop_pids PID...: asks each process to stop (SIGTERM), waits up to 5 s for each, then kills what is left.
stop_pids() {
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
