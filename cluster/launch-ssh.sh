#!/usr/bin/env bash
# Starts a run across machines: (pre-training when the config names no checkpoint,) the learner on this
# machine and the actors of a host file on other machines over SSH, each actor's output streamed back into
# RUN/logs/actor-HOST-I.log. Stops everything it started, by PID, on Ctrl-C, on error, or when the learner exits.
#
#   cluster/launch-ssh.sh CONFIG --hosts HOSTFILE [--learner-address ADDR] [--bin PATH] [--remote-bin PATH]
#                         [--remote-dir DIR] [--run-dir DIR | --resume DIR] [--set key=value ...] [--print-plan]
#
# Host file: one machine per line, `host actors=N [bin=PATH] [user=U]`; `#` starts a comment. Actor indices are
# global, in host-file order, and cluster.actors is set to their total.
#
# Every host needs the dppo binary (--remote-bin, or bin= per host; default: this binary's absolute path) and
# passwordless SSH (BatchMode: a missing key fails at once instead of prompting). The config is copied to
# REMOTE_DIR/RUN_DIR/actor-config.yaml on each host (REMOTE_DIR defaults to this directory's absolute path), so
# the actors run exactly the learner's file. Cluster key: the learner and every actor read their own key file
# (cluster.key_file, or DPPO_CLUSTER_KEY_FILE, whose path -- never the key -- is passed on to the actors);
# DPPO_CLUSTER_KEY is refused here because it would have to travel on a command line.
#
# Stopping a remote actor: without a terminal, sshd does not signal a remote command when the connection
# drops, so killing the local ssh client alone would leave the actor running. Each actor therefore runs under a
# small POSIX-shell wrapper that starts it in the background and reads its ssh session's stdin; the local
# ssh's stdin is a FIFO that never delivers data, so the read ends only when the connection closes (the
# launcher killed the ssh client, or the network or this machine went away), and the wrapper then kills the
# actor by its PID. When the actor exits by itself the wrapper exits with its status. `ssh -tt` would get
# SIGHUP delivered by the remote terminal instead, but mixes CR into the logs and needs a terminal here.
set -euo pipefail
# The body is one compound command, so bash reads all of it before running: editing this file while a
# run is going cannot change (or break) that run.
{

usage() {
  echo "usage: $0 CONFIG --hosts HOSTFILE [--learner-address ADDR] [--bin PATH] [--remote-bin PATH] [--remote-dir DIR]" \
    "[--run-dir DIR | --resume DIR] [--set key=value ...] [--print-plan]" >&2
  exit 2
}
fail() { echo "launch-ssh: $*" >&2; exit 2; }
[ $# -ge 1 ] || usage
config=$1; shift
hosts_file=""
learner_address=""
bin="${DPPO_BIN:-.build/release/dppo}"
remote_bin=""
remote_dir=$PWD
run_dir=""
resume=""
print_plan=false
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts_file=$2; shift 2 ;;
    --learner-address) learner_address=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --remote-bin) remote_bin=$2; shift 2 ;;
    --remote-dir) remote_dir=$2; shift 2 ;;
    --run-dir) run_dir=$2; shift 2 ;;
    --resume) resume=$2; shift 2 ;;
    --set) overrides+=(--set "$2"); shift 2 ;;
    --print-plan) print_plan=true; shift ;;
    *) usage ;;
  esac
done
ssh_command=${DPPO_SSH:-ssh}  # tests replace ssh with a stand-in that enters a network namespace
[ -f "$config" ] || fail "config $config not found"
[ -n "$hosts_file" ] || fail "--hosts HOSTFILE is required (one 'host actors=N [bin=PATH] [user=U]' line per machine)"
[ -f "$hosts_file" ] || fail "host file $hosts_file not found"
[ -x "$bin" ] || fail "$bin is not built (swift build -c release); it also resolves the config, --print-plan included"
[ -z "${DPPO_CLUSTER_KEY:-}" ] || fail "DPPO_CLUSTER_KEY would have to reach the actors on a command line; put the key in a file on every host and set DPPO_CLUSTER_KEY_FILE (README, Launching across machines)"
if [ -n "$resume" ]; then
  [ -z "$run_dir" ] || fail "--resume continues the run in its own directory; drop --run-dir"
  $print_plan || [ -d "$resume/checkpoints" ] || fail "$resume is not a run directory (no checkpoints/)"
  run_dir=$resume
fi
case "$bin" in /*) ;; *) bin_absolute=$PWD/$bin ;; esac
remote_bin=${remote_bin:-${bin_absolute:-$bin}}

# The host file: host names, actor counts, per-host binaries and users.
host_names=(); host_actors=(); host_bins=(); host_users=()
line_number=0
while IFS= read -r line || [ -n "$line" ]; do
  line_number=$((line_number + 1))
  line=${line%%#*}
  read -r -a fields <<< "$line"
  [ ${#fields[@]} -gt 0 ] || continue
  actors=""; host_bin=$remote_bin; user=""
  for field in "${fields[@]:1}"; do
    case "$field" in
      actors=*) actors=${field#actors=} ;;
      bin=*) host_bin=${field#bin=} ;;
      user=*) user=${field#user=} ;;
      *) fail "$hosts_file:$line_number: unknown field '$field' (expected actors=N, bin=PATH, user=U)" ;;
    esac
  done
  [[ "$actors" =~ ^[0-9]+$ ]] || fail "$hosts_file:$line_number: ${fields[0]} needs actors=N"
  host_names+=("${fields[0]}"); host_actors+=("$actors"); host_bins+=("$host_bin"); host_users+=("$user")
done < "$hosts_file"
total_actors=0
for n in "${host_actors[@]}"; do total_actors=$((total_actors + n)); done
[ "$total_actors" -gt 0 ] || fail "$hosts_file names no actors"
overrides+=(--set "cluster.actors=$total_actors")

# What the launcher needs from the resolved config (file, then --set, then defaults), from the binary.
source "$(dirname "$0")/lib.sh"
name=$(config_value name)
checkpoint=$(config_value pretrain.checkpoint)
bind_host=$(config_value cluster.host)
key_file=$(config_value cluster.key_file)
allow_unauthenticated=$(config_value cluster.allow_unauthenticated)
# Remote actors can never reach a loopback address: the learner then listens on every interface.
learner_overrides=()
case "${bind_host:-127.0.0.1}" in
  127.*|localhost|::1) learner_overrides=(--set cluster.host=0.0.0.0) ;;
esac
learner_address=${learner_address:-$(hostname -f 2>/dev/null || hostname)}
if [ -z "$key_file" ] && [ -z "${DPPO_CLUSTER_KEY_FILE:-}" ]; then
  [ "$allow_unauthenticated" = true ] || fail "no cluster key: the learner listens on every interface, so anyone who reaches its ports could send it data; set DPPO_CLUSTER_KEY_FILE or cluster.key_file (openssl rand -hex 32), or --set cluster.allow_unauthenticated=true on a network you trust (README, Launching across machines)"
  echo "launch-ssh: warning: no cluster key (cluster.allow_unauthenticated): messages are not authenticated" >&2
fi

if [ -z "$run_dir" ]; then
  if $print_plan; then run_dir="runs/$name/<new: dppo config run-dir>"; else run_dir=$(new_run_dir); fi
fi
case "$run_dir" in /*) remote_run=$run_dir ;; *) remote_run=$remote_dir/$run_dir ;; esac
remote_config=$remote_run/actor-config.yaml

quote() { printf '%q' "$1"; }
quote_all() { local word out=""; for word in "$@"; do out+=" $(quote "$word")"; done; printf '%s' "${out# }"; }
# For the plan: a remote shell command in single quotes, readable as the remote shell will see it.
single_quote() { local squote="'"; printf "'%s'" "${1//$squote/$squote\\$squote$squote}"; }

# ssh arguments for host h (an index into the host arrays).
ssh_to() {
  local h=$1
  ssh_args=("$ssh_command" -o BatchMode=yes)
  [ -z "${host_users[$h]}" ] || ssh_args+=(-l "${host_users[$h]}")
  ssh_args+=("${host_names[$h]}" --)
}

# The remote shell command of actor `index` on host h: the wrapper described at the top of this file.
actor_remote_command() {
  local h=$1 index=$2 environment=""
  [ -z "${DPPO_CLUSTER_KEY_FILE:-}" ] || environment="DPPO_CLUSTER_KEY_FILE=$(quote "$DPPO_CLUSTER_KEY_FILE") "
  local actor
  actor="$environment$(quote_all "${host_bins[$h]}" actor --config "$remote_config" --learner "$learner_address" \
    --index "$index" "${overrides[@]}")"
  printf '%s' "cd $(quote "$remote_dir") || exit 1; exec 3<&0; $actor 3<&- & actor=\$!;" \
    " (cat <&3 >/dev/null 2>&1; kill -TERM \$actor 2>/dev/null) & watcher=\$!;" \
    " wait \$actor; status=\$?; kill \$watcher 2>/dev/null; exit \$status"
}

copy_config_command() { printf '%s' "mkdir -p $(quote "$remote_run") && cat > $(quote "$remote_config")"; }

if [ -n "$resume" ]; then
  learner_start=(--resume "$run_dir")
elif [ -z "$checkpoint" ]; then
  pretrain_command=("$bin" pretrain --config "$config" "${overrides[@]}" --output "$run_dir/pretrain")
  checkpoint="$run_dir/pretrain/pretrained.safetensors"
fi
[ -n "$resume" ] || learner_start=(--run-dir "$run_dir" --base-policy "$checkpoint")
learner_command=("$bin" learner --config "$config" "${overrides[@]}" "${learner_overrides[@]}" "${learner_start[@]}")

if $print_plan; then
  echo "# run directory $run_dir; learner reachable at $learner_address; $total_actors actors"
  for h in "${!host_names[@]}"; do
    ssh_to "$h"
    echo "config ${host_names[$h]}: $(quote_all "${ssh_args[@]}") $(single_quote "$(copy_config_command)") < $(quote "$config")"
  done
  [ -z "${pretrain_command+set}" ] || echo "pretrain: $(quote_all "${pretrain_command[@]}")"
  echo "learner: $(quote_all "${learner_command[@]}")"
  index=0
  for h in "${!host_names[@]}"; do
    ssh_to "$h"
    for ((k = 0; k < host_actors[h]; k++)); do
      echo "actor $index ${host_names[$h]} $run_dir/logs/actor-${host_names[$h]}-$index.log: $(quote_all "${ssh_args[@]}") $(single_quote "$(actor_remote_command "$h" "$index")")"
      index=$((index + 1))
    done
  done
  exit 0
fi

mkdir -p "$run_dir/logs"
echo "launch-ssh: run directory $run_dir; learner reachable at $learner_address; $total_actors actors on ${#host_names[@]} hosts"
# Every ssh client reads this FIFO, which never delivers data: its remote stdin stays open as long as it runs.
hold=$(mktemp -u "${TMPDIR:-/tmp}/dppo-launch-ssh.XXXXXX")
mkfifo -m 600 "$hold"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$hold"
}
trap cleanup EXIT INT TERM

# Copy the config first: an unreachable host fails before any pre-training or learner time is spent.
for h in "${!host_names[@]}"; do
  ssh_to "$h"
  "${ssh_args[@]}" "$(copy_config_command)" < "$config" || fail "cannot copy the config to ${host_names[$h]} over ssh (see above)"
done
if [ -n "${pretrain_command+set}" ]; then
  "${pretrain_command[@]}" 2>&1 | tee "$run_dir/logs/pretrain.log"
fi

# Logs are appended, so a resumed run keeps the history of the runs before it.
"${learner_command[@]}" > >(tee -a "$run_dir/logs/learner.log") 2>&1 &
learner=$!
pids+=("$learner")
index=0
for h in "${!host_names[@]}"; do
  ssh_to "$h"
  for ((k = 0; k < host_actors[h]; k++)); do
    "${ssh_args[@]}" "$(actor_remote_command "$h" "$index")" 0<> "$hold" >> "$run_dir/logs/actor-${host_names[$h]}-$index.log" 2>&1 &
    pids+=("$!")
    index=$((index + 1))
  done
done
echo "launch-ssh: learner pid $learner, $total_actors actors (logs in $run_dir/logs)"

status=0
wait "$learner" || status=$?
if [ $status -ne 0 ]; then
  echo "launch-ssh: learner exited with status $status; see $run_dir/logs" >&2
  for log in "$run_dir"/logs/actor-*.log; do tail -n 3 "$log" >&2 || true; done
  exit $status
fi
if [ -f "$run_dir/summary.json" ]; then
  echo "launch-ssh: summary ($run_dir/summary.json):"
  cat "$run_dir/summary.json"
fi
exit
}
