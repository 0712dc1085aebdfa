#!/usr/bin/env bash
# Runs the three jobs whose outputs a refactor must leave unchanged, into OUT/:
#   default/   the embedded default, 6 iterations (scripts/run.sh --set train.n_train_itr=6, without the build);
#   offline/   a short `dppo offline` EDP-IQL run on a small scripted Pendulum dataset;
#   keyed/     a strict 3-iteration cluster run with a cluster key, from default/'s pre-trained checkpoint.
# Compare two such folders (before and after a change, same machine) with scripts/check_unchanged.py.
#
#   scripts/behaviour-runs.sh OUT [--bin PATH] [--set KEY=VALUE]...   (default bin: .build/release/dppo)
# Each --set is passed to all three jobs (e.g. --set threads=1 to compare with a binary from before `threads`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 OUT [--bin PATH]" >&2; exit 2; }
out=$1; shift
bin=.build/release/dppo
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "behaviour-runs: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "behaviour-runs: $bin is not built (swift build -c release)" >&2; exit 2; }
[ -e "$out" ] && { echo "behaviour-runs: $out exists; give a new folder" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "== default run (6 iterations)"
cluster/launch.sh configs/pendulum/finetune.yaml --bin "$bin" --run-dir "$out/default" \
  --set train.n_train_itr=6 ${sets[@]+"${sets[@]}"} > "$out/default.log" 2>&1

echo "== offline run"
cat > "$out/offline.yaml" <<YAML
name: offline-check
seed: 5
env: {task: pendulum, n_envs: 4, horizon_steps: 2, act_steps: 2}
model: {denoising_steps: 10, ft_denoising_steps: 5, mlp_dims: [64, 64, 64], time_dim: 8}
pretrain: {dataset: $out/offline-data.safetensors}
offline: {method: edp, variant: iql, n_steps: 300, batch_size: 64, critic_pretrain_steps: 100, log_freq: 50,
          eval_freq: 150, eval_episodes: 4, candidates: 4}
YAML
"$bin" collect --config "$out/offline.yaml" --gain 1 --episodes 8 --output "$out/offline-data.safetensors" \
  > "$out/offline.log" 2>&1
"$bin" offline --config "$out/offline.yaml" --run-dir "$out/offline" ${sets[@]+"${sets[@]}"} >> "$out/offline.log" 2>&1

echo "== strict run with a cluster key (3 iterations)"
printf %s 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff > "$out/cluster.key"
chmod 600 "$out/cluster.key"
DPPO_CLUSTER_KEY_FILE="$out/cluster.key" cluster/launch.sh configs/pendulum/finetune.yaml --bin "$bin" \
  --run-dir "$out/keyed" --set train.n_train_itr=3 --set cluster.base_port=5655 \
  --set pretrain.checkpoint="$out/default/pretrain/pretrained.safetensors" ${sets[@]+"${sets[@]}"} > "$out/keyed.log" 2>&1
echo "behaviour-runs: done; outputs in $out"
