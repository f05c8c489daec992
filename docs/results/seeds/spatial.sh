#!/bin/bash
# the table's Ground-R1 arm with RL questions of the spatial family only (task.families=spatial), from the table's base;
# greedy eval on the usual 500 test questions (all families)
cd /work/main
export GR1_KERNELS=portable
B=runs/cache/base-341adee574d141ec.safetensors
n=${1:-ground_r1_spatial}; shift
t0=$(date +%s)
/tmp/gr1n3/gr1 launch --config configs/results.yaml --actors 2 --run-dir /tmp/seeds/$n \
  --set learner.init_checkpoint=$B --set task.families=spatial "$@" > /tmp/seeds/$n.launch.log 2>&1 || echo "launch failed $n" >> /tmp/seeds/status
t1=$(date +%s)
/tmp/gr1n3/gr1 eval --checkpoint /tmp/seeds/$n/policy.safetensors --data /tmp/test500 --mode grounded \
  --config configs/results.yaml --out /tmp/seeds/$n.eval.json --threads 2 > /tmp/seeds/$n.eval.log 2>&1
echo "$n rl $((t1-t0)) s eval $(( $(date +%s)-t1 )) s rc $?" >> /tmp/seeds/status
