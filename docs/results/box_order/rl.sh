#!/bin/bash
# usage: rl.sh NAME [--set k=v ...]: the table's Ground-R1 arm from the table's base, then greedy eval (extra eval sets via EVALSET)
n=$1; shift
cd /work/main
export GR1_KERNELS=portable
mkdir -p /tmp/rl
/tmp/gr1n2/gr1 launch --config configs/results.yaml --actors 2 --run-dir /tmp/rl/$n \
  --set learner.init_checkpoint=${BASE:-runs/cache/base-b7e14f86aa482d11.safetensors} "$@" > /tmp/rl/$n.launch.log 2>&1 || { echo "launch failed" >> /tmp/rl/$n.launch.log; exit 1; }
/tmp/gr1n2/gr1 eval --checkpoint /tmp/rl/$n/policy.safetensors --data /tmp/test500 --mode grounded \
  --config configs/results.yaml --out /tmp/rl/$n.eval.json --threads 2 $EVALSET > /tmp/rl/$n.eval.log 2>&1
echo "done $?" >> /tmp/rl/$n.eval.log
