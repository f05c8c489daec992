#!/bin/bash
# RL arms of the table at run.seed 2 and 3, from the table's base; greedy eval on the 500 test questions.
cd /work/main
export GR1_KERNELS=portable
B=runs/cache/base-341adee574d141ec.safetensors
for seed in 2 3; do
  for arm in ground_r1 srpo direct_grpo; do
    n=${arm}_s$seed; extra=(); mode=grounded
    case $arm in direct_grpo) extra=(--set rollout.mode=direct); mode=direct ;; srpo) extra=(--set learner.advantage=srpo) ;; esac
    t0=$(date +%s)
    /tmp/gr1n2/gr1 launch --config configs/results.yaml --actors 2 --run-dir /tmp/seeds/$n \
      --set learner.init_checkpoint=$B --set run.seed=$seed "${extra[@]}" > /tmp/seeds/$n.launch.log 2>&1 || echo "launch failed $n" >> /tmp/seeds/status
    t1=$(date +%s)
    /tmp/gr1n2/gr1 eval --checkpoint /tmp/seeds/$n/policy.safetensors --data /tmp/test500 --mode $mode \
      --config configs/results.yaml --out /tmp/seeds/$n.eval.json --threads 2 > /tmp/seeds/$n.eval.log 2>&1
    echo "$n rl $((t1-t0)) s eval $(( $(date +%s)-t1 )) s rc $?" >> /tmp/seeds/status
  done
done
echo ALLDONE >> /tmp/seeds/status
