#!/bin/bash
# after the long run: the table's Ground-R1 arm with top-p 0.9 rollouts, seeds 1 and 2
while ! grep -q LONGDONE /tmp/seeds/status 2>/dev/null; do sleep 20; done
cd /work/main
export GR1_KERNELS=portable
B=runs/cache/base-341adee574d141ec.safetensors
for seed in 1 2; do
  n=ground_r1_topp_s$seed; t0=$(date +%s)
  /tmp/gr1n2/gr1 launch --config configs/results.yaml --actors 2 --run-dir /tmp/seeds/$n \
    --set learner.init_checkpoint=$B --set rollout.top_p=0.9 --set run.seed=$seed > /tmp/seeds/$n.launch.log 2>&1 || echo "launch failed $n" >> /tmp/seeds/status
  t1=$(date +%s)
  /tmp/gr1n2/gr1 eval --checkpoint /tmp/seeds/$n/policy.safetensors --data /tmp/test500 --mode grounded \
    --config configs/results.yaml --out /tmp/seeds/$n.eval.json --threads 2 > /tmp/seeds/$n.eval.log 2>&1
  echo "$n rl $((t1-t0)) s eval $(( $(date +%s)-t1 )) s rc $?" >> /tmp/seeds/status
done
echo TOPPDONE >> /tmp/seeds/status
