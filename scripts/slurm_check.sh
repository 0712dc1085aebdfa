#!/usr/bin/env bash
# cluster/slurm.sbatch under a real Slurm: starts a private Slurm (munged, slurmctld, slurmd with their own
# key, config, spool, state, logs and ports under DIR; proctrack/linuxproc, task/none), then
#   1. submits a run with the learner as 2 MPI ranks (srun --mpi=pmix) and 2 actors sharing the node, and waits;
#   2. submits a longer run, requeues it (`scontrol requeue`) after its third iteration, and waits for the requeued
#      job to resume the same run directory and finish;
#   2b. submits a run into a directory holding metrics but no checkpoint (a job killed outright before its first
#      save), which keeps those under attempts/ and runs again;
#   3. submits a two-seed sweep as a job array (`dppo sweep --slurm`) and waits for both runs to finish;
#   4. submits a three-node job: the learner as 2 MPI ranks on two nodes, 2 actors on the third.
# The three nodes are slurmd processes in network namespaces the script creates (one bridge, a veth per node),
# each with its own NodeName and NodeAddr; where namespaces cannot be made it runs one node on the host and
# skips job 4.
# Every daemon is stopped by the PID it was started with, on any exit. Needs root, slurm-wlm and munge
# (SlurmTests installs them). Prints one "ok:" line per check and exits 0, or names what failed and exits 1.
#
#   scripts/slurm_check.sh DIR BIN        # BIN: the dppo binary the jobs run (a path every node sees)
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 DIR BIN" >&2; exit 2; }
dir=$(mkdir -p "$1" && cd "$1" && pwd)
bin=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "slurm_check: $*" >&2; for log in "$dir"/log/*.log; do echo "== $log" >&2; tail -n 15 "$log" >&2 || true; done; exit 1; }

pids=()
namespaces=()
bridge=""
stop() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for namespace in "${namespaces[@]}"; do ip netns delete "$namespace" 2>/dev/null || true; done
  [ -z "$bridge" ] || ip link delete "$bridge" 2>/dev/null || true
}
trap stop EXIT

mkdir -p "$dir"/{state,spool,log}
head -c 1024 /dev/urandom > "$dir/munge.key"
chmod 400 "$dir/munge.key"
host=$(hostname -s)
port=$((16000 + $$ % 400 * 2))

# Three nodes, each a slurmd in its own network namespace with its own address on a bridge this script creates
# (10.N.0.2-4, N from the PID; slurmctld on 10.N.0.1 in the host's namespace). Where namespaces cannot be made,
# one node on the host (127.0.0.1) and no multi-node job.
subnet=10.$((100 + $$ % 100)).0
tag=dppo$$
node_names=()
node_lines=""
make_nodes() {
  ip link add "br-$tag" type bridge 2>/dev/null || return 1
  bridge=br-$tag
  ip addr add "$subnet.1/24" dev "$bridge" && ip link set "$bridge" up || return 1
  for i in 1 2 3; do
    namespace=$tag-n$i
    ip netns add "$namespace" || return 1
    namespaces+=("$namespace")
    ip link add "v$i-$tag" type veth peer name eth0 netns "$namespace" || return 1
    ip link set "v$i-$tag" master "$bridge" up || return 1
    ip -n "$namespace" addr add "$subnet.$((i + 1))/24" dev eth0 || return 1
    ip -n "$namespace" link set eth0 up && ip -n "$namespace" link set lo up || return 1
    node_names+=("n$i")
    node_lines+="NodeName=n$i NodeAddr=$subnet.$((i + 1)) CPUs=$(nproc) RealMemory=2000 State=UNKNOWN"$'\n'
  done
}
if make_nodes; then
  controller=$subnet.1
else
  # Whatever was made is removed; one node on the host instead.
  for namespace in "${namespaces[@]}"; do ip netns delete "$namespace" 2>/dev/null || true; done
  [ -z "$bridge" ] || ip link delete "$bridge" 2>/dev/null || true
  namespaces=(); bridge=""
  node_names=("$host")
  node_lines="NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=2000 State=UNKNOWN"$'\n'
  controller=127.0.0.1
fi
node_list=$(IFS=,; echo "${node_names[*]}")
cat > "$dir/slurm.conf" <<EOF
ClusterName=dppocheck
SlurmctldHost=$host($controller)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge.sock
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmdSpoolDir=$dir/spool/%n
# Per node: PMIx keeps a step's client files under TmpFS, which the nodes of this one machine would otherwise share.
TmpFS=$dir/tmp/%n
StateSaveLocation=$dir/state
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
${node_lines}PartitionName=check Nodes=$node_list Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
EOF
export SLURM_CONF=$dir/slurm.conf
/usr/sbin/munged --foreground --socket="$dir/munge.sock" --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed" > "$dir/log/munged.out.log" 2>&1 < /dev/null &
pids+=($!)
for _ in $(seq 100); do [ -S "$dir/munge.sock" ] && break; sleep 0.1; done
/usr/sbin/slurmctld -D -f "$SLURM_CONF" > "$dir/log/slurmctld.out.log" 2>&1 < /dev/null &
pids+=($!)
for i in "${!node_names[@]}"; do
  name=${node_names[$i]}
  mkdir -p "$dir/spool/$name" "$dir/tmp/$name"
  if [ -n "$bridge" ]; then
    # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup file system slurmd looks for.
    nsenter --net="/run/netns/${namespaces[$i]}" /usr/sbin/slurmd -D -N "$name" -f "$SLURM_CONF" > "$dir/log/slurmd-$name.out.log" 2>&1 < /dev/null &
  else
    /usr/sbin/slurmd -D -f "$SLURM_CONF" > "$dir/log/slurmd-$name.out.log" 2>&1 < /dev/null &
  fi
  pids+=($!)
done
idle() { [ "$(timeout 5 sinfo -h -N -o %T 2>/dev/null | grep -c '^idle$')" -eq "${#node_names[@]}" ]; }
for _ in $(seq 150); do idle && break; sleep 0.2; done
idle || fail "the private Slurm nodes did not become idle: $(sinfo -N 2>&1)"
echo "ok: private Slurm up (slurmctld port $port, nodes $node_list${bridge:+, each in its own network namespace})"

openssl rand -hex 32 > "$dir/cluster.key"
chmod 600 "$dir/cluster.key"
export DPPO_BIN=$bin DPPO_CLUSTER_KEY_FILE=$dir/cluster.key
cd "$repo"
small=(--set model.mlp_dims=[32,32,32] --set model.critic_dims=[32,32,32] --set train.n_steps=20 --set env.n_envs=4
       --set train.val_freq=0 --set train.eval_episodes=2 --set threads=1)
"$bin" pretrain --config configs/pendulum/finetune.yaml "${small[@]}" --set pretrain.n_epochs=0 --output "$dir/start" > "$dir/log/start.log" 2>&1
start=$dir/start/pretrained.safetensors

iterations() { grep -o '"iteration":[0-9]*' "$1/metrics.jsonl" | cut -d: -f2 | tr '\n' ' ' | sed 's/ $//'; }

# 1. Learner as 2 MPI ranks and 2 actors on one node.
timeout 300 sbatch --wait --nodes=1 --ntasks-per-node=2 --output="$dir/job1.out" cluster/slurm.sbatch configs/pendulum/finetune.yaml \
  --learner-ranks 2 --run-dir "$dir/run1" "${small[@]}" --set train.n_train_itr=3 --set pretrain.checkpoint="$start" \
  --set cluster.base_port=$((port + 10)) > /dev/null || fail "job 1 failed: $(tail -n 20 "$dir/job1.out")"
[ "$(iterations "$dir/run1")" = "0 1 2 3" ] || fail "job 1: metrics iterations $(iterations "$dir/run1")"
grep -q '"state" : "finished"' "$dir/run1/summary.json" || fail "job 1: summary $(cat "$dir/run1/summary.json")"
grep -q "× 2 ranks" "$dir/run1/logs/learner.log" || fail "job 1: the learner did not run as 2 ranks: $(head -n 5 "$dir/run1/logs/learner.log")"
ls "$dir/run1/logs"/actor-*-0.log "$dir/run1/logs"/actor-*-1.log > /dev/null || fail "job 1: no actor logs"
echo "ok: job 1: learner as 2 MPI ranks and 2 actors on one node; iterations $(iterations "$dir/run1")"

# 2. Requeued mid-run: the learner checkpoints on the SIGTERM, the job runs again and resumes the same directory.
job=$(sbatch --parsable --nodes=1 --ntasks-per-node=2 --output="$dir/job2.out" --open-mode=append cluster/slurm.sbatch \
  configs/pendulum/finetune.yaml --run-dir "$dir/run2" "${small[@]}" --set train.n_train_itr=10 --set train.save_model_freq=1 \
  --set pretrain.checkpoint="$start" --set cluster.base_port=$((port + 20)))
for _ in $(seq 600); do grep -q '"iteration":3' "$dir/run2/metrics.jsonl" 2>/dev/null && break; sleep 0.1; done
grep -q '"iteration":3' "$dir/run2/metrics.jsonl" 2>/dev/null || fail "job 2 did not reach iteration 3: $(tail -n 20 "$dir/job2.out")"
scontrol requeue "$job"
# A requeued job waits for its begin time (now + 120 s by default); start it as soon as it is pending again.
for _ in $(seq 300); do [ "$(squeue -h -j "$job" -o %T)" = PENDING ] && break; sleep 0.1; done
scontrol update JobId="$job" StartTime=now
for _ in $(seq 1200); do [ -z "$(squeue -h -j "$job" -o %T 2>/dev/null)" ] && break; sleep 0.2; done
[ -z "$(squeue -h -j "$job" -o %T 2>/dev/null)" ] || fail "job 2 did not finish after its requeue: $(tail -n 20 "$dir/job2.out")"
restarts=$(scontrol show job "$job" 2>/dev/null | grep -o 'Restarts=[0-9]*' || echo "Restarts=?")
grep -q "holds checkpoints (restart 1): resuming" "$dir/job2.out" || fail "job 2 was not resumed: $(tail -n 20 "$dir/job2.out")"
grep -q "stopped after iteration" "$dir/run2/logs/learner.log" || fail "job 2's learner did not checkpoint on the signal"
[ "$(iterations "$dir/run2")" = "0 1 2 3 4 5 6 7 8 9 10" ] || fail "job 2: metrics iterations $(iterations "$dir/run2")"
grep -q '"state" : "finished"' "$dir/run2/summary.json" || fail "job 2: summary $(cat "$dir/run2/summary.json")"
echo "ok: job 2: requeued after iteration 3 ($restarts), resumed the same directory, iterations $(iterations "$dir/run2")"

# 2b. A run directory left by a job killed before its first checkpoint (metrics, no checkpoint): the next job keeps
# those outputs under attempts/ and runs the whole run again.
mkdir -p "$dir/run2b"
cp "$dir/run1/metrics.jsonl" "$dir/run2b/"
timeout 300 sbatch --wait --nodes=1 --ntasks-per-node=2 --output="$dir/job2b.out" cluster/slurm.sbatch configs/pendulum/finetune.yaml \
  --run-dir "$dir/run2b" "${small[@]}" --set train.n_train_itr=2 --set pretrain.checkpoint="$start" \
  --set cluster.base_port=$((port + 30)) > /dev/null || fail "job 2b failed: $(tail -n 20 "$dir/job2b.out")"
[ "$(iterations "$dir/run2b")" = "0 1 2" ] || fail "job 2b: metrics iterations $(iterations "$dir/run2b")"
cmp -s "$dir/run1/metrics.jsonl" "$dir"/run2b/attempts/*/metrics.jsonl || fail "job 2b: the earlier attempt's metrics were not kept"
echo "ok: job 2b: a directory with metrics and no checkpoint: the earlier attempt kept in attempts/, iterations $(iterations "$dir/run2b")"

# 3. A sweep as a job array (`dppo sweep --slurm`): two seeds, both tasks at once on the node, each its own run.
submitted=$("$bin" sweep configs/pendulum/finetune.yaml --grid seed=1,2 --slurm --parallel 2 --dir "$dir/sweep" "${small[@]}" \
  --set train.n_train_itr=2 --set pretrain.checkpoint="$start" --set cluster.base_port=$((port + 40)) \
  --sbatch=--nodes=1 --sbatch=--ntasks-per-node=2)
array=$(sed -E 's/^submitted job array ([0-9]+):.*/\1/' <<< "$submitted")
[[ "$array" =~ ^[0-9]+$ ]] || fail "job 3 was not submitted: $submitted"
for _ in $(seq 1500); do [ -z "$(squeue -h -j "$array" -o %T 2>/dev/null)" ] && break; sleep 0.2; done
for seed in 1 2; do
  grep -q '"state" : "finished"' "$dir/sweep/seed=$seed/summary.json" 2>/dev/null \
    || fail "job 3: the run for seed $seed did not finish: $(tail -n 20 "$dir"/sweep/slurm-*_$((seed - 1)).out)"
done
echo "ok: job 3: a sweep as job array $array, seeds 1 and 2 finished in their own directories"

# 4. Three nodes, each its own network stack: the learner as 2 MPI ranks on the first two, 2 actors on the third,
# which reach rank 0 at its node's address over the bridge.
if [ -n "$bridge" ]; then
  job4=$(timeout 300 sbatch --wait --parsable --nodes=3 --ntasks-per-node=2 --output="$dir/job4.out" cluster/slurm.sbatch \
    configs/pendulum/finetune.yaml --learner-nodes 2 --learner-ranks 2 --run-dir "$dir/run4" "${small[@]}" --set train.n_train_itr=3 \
    --set pretrain.checkpoint="$start" --set cluster.base_port=$((port + 60))) || fail "job 4 failed: $(tail -n 20 "$dir/job4.out")"
  [ "$(iterations "$dir/run4")" = "0 1 2 3" ] || fail "job 4: metrics iterations $(iterations "$dir/run4")"
  grep -q "× 2 ranks" "$dir/run4/logs/learner.log" || fail "job 4: the learner did not run as 2 ranks: $(head -n 5 "$dir/run4/logs/learner.log")"
  # Each slurmd logs the steps it launched: the learner's on n1 and n2, the actors' on n3 alone.
  steps_on() { grep -o "launch task StepId=$job4\.[0-9]*" "$dir/log/slurmd-$1.log" | sort -u | sed 's/.*=//' | tr '\n' ' '; }
  [ -n "$(steps_on n1)" ] && [ "$(steps_on n1)" = "$(steps_on n2)" ] || fail "job 4: the learner step is not on n1 and n2: $(steps_on n1)/$(steps_on n2)"
  [ -n "$(steps_on n3)" ] && [ "$(steps_on n3)" != "$(steps_on n1)" ] || fail "job 4: the actor step is not on n3 alone: $(steps_on n3)"
  for index in 0 1; do
    grep -q "joined learner at tcp://$subnet.2:" "$dir/run4/logs"/actor-*-$index.log || fail "job 4: actor $index did not join the learner at n1's address"
  done
  echo "ok: job 4: three nodes in their own network namespaces; learner as 2 MPI ranks on n1 and n2, 2 actors on n3; iterations $(iterations "$dir/run4")"
else
  echo "skipped: job 4 (three nodes): network namespaces could not be created here"
fi
