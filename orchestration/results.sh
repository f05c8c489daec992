#!/usr/bin/env bash
# `make results`: the issue-4 experiment, end to end (docs/results.md).
#
#   (a) base       pretrained policy (gr1 pretrain), or a cached one
#   (b) synth      the held-out test split (RESULTS_N questions)
#   (c) rl_<arm>   ground_r1, direct_grpo, srpo: gr1 launch from the base
#   (d) eval_<arm> the base (grounded) and each arm's final policy (direct_grpo
#                  in direct mode), two evaluations at a time (one core each)
#   (e) summarize  gr1 results summarize -> DIR/summary.json + a table
#
# Every step is timed; the seconds go to DIR/timings.json and are printed.
# Each step's output goes to DIR/logs/<step>.log; a failing step prints the
# tail of its log and stops the script (exit status 1).
#
# Base cache: runs/cache/base-<key>.safetensors (+ .report.json), where <key>
# is the sha256 of the config file (less the RL-only settings:
# pretrain_relevant_config below) and of the sources that decide what
# pretraining produces (CACHE_SOURCES below). A cached base is copied to
# DIR/base.safetensors, timings.json records "base_cached": true, and
# summary.json's timings.base_pretrain_seconds reports the cached base's own
# pretraining time (train_seconds + vision seconds of its report).
# RESULTS_NO_CACHE=1 ignores (and refreshes) the cache.
#
# Environment (defaults in brackets):
#   BUILD [build]                      build directory (as in the Makefile)
#   GR1_BIN [$BUILD/bin/gr1]
#   RESULTS_CONFIG [configs/results.yaml]
#   RESULTS_DIR [runs/results]
#   RESULTS_N [500]                    test questions
#   RESULTS_STEPS [config]             learner steps of each RL run (--steps)
#   RESULTS_ACTORS [2]                 actors of each RL run (two keep both cores busy
#                                      while the learner trains: docs/benchmarks.md)
#   RESULTS_PRETRAIN_STEPS [config]    pretraining steps when no base is cached
#   RESULTS_CACHE [runs/cache]
#   RESULTS_BASE [unset]               use this base checkpoint (and its .report.json) as is
#   RESULTS_LOCATE_ITEMS [200]         held-out locate items per checkpoint (summarize)
#   RESULTS_KERNELS [portable]         GR1_KERNELS of every step (common/threads.h):
#                                      portable: the same floats on any x86-64 CPU
#                                      with AVX2 and FMA, so a base pretrained from
#                                      scratch comes out the same on every machine;
#                                      native: this CPU's own kernels (faster; a base
#                                      made with them differs from machine to machine)
set -euo pipefail

cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
BIN=${GR1_BIN:-$BUILD/bin/gr1}
CONFIG=${RESULTS_CONFIG:-configs/results.yaml}
DIR=${RESULTS_DIR:-runs/results}
N=${RESULTS_N:-500}
STEPS=${RESULTS_STEPS:-}
ACTORS=${RESULTS_ACTORS:-2}
PRETRAIN_STEPS=${RESULTS_PRETRAIN_STEPS:-}
CACHE=${RESULTS_CACHE:-runs/cache}
LOCATE_ITEMS=${RESULTS_LOCATE_ITEMS:-200}
KERNELS=${RESULTS_KERNELS:-portable}
CACHE_SOURCES=(learner/pretrain.cc learner/vision_pretrain.cc learner/data_parallel.cc
               common/task.cc common/policy.cc common/threads.cc
               common/tokenizer.cc common/tokenizer.h common/prompt.cc)
ARMS=(ground_r1 direct_grpo srpo)

if [ ! -x "$BIN" ]; then
  echo "results: $BIN not found (run make build, or set BUILD)" >&2
  exit 2
fi
for v in "$N" "${STEPS:-1}" "$ACTORS" "${PRETRAIN_STEPS:-1}" "$LOCATE_ITEMS"; do
  case $v in
    '' | *[!0-9]*) v=0 ;;
  esac
  if [ "$((10#$v))" -le 0 ]; then
    echo "results: RESULTS_N, RESULTS_STEPS, RESULTS_ACTORS, RESULTS_PRETRAIN_STEPS and" \
      "RESULTS_LOCATE_ITEMS must be positive integers" >&2
    exit 2
  fi
done
case $KERNELS in
  portable | native) ;;
  *)
    echo "results: RESULTS_KERNELS must be portable or native (got \"$KERNELS\")" >&2
    exit 2
    ;;
esac
export GR1_KERNELS=$KERNELS
if ! KERNELS_JSON=$("$BIN" kernels); then
  echo "results: RESULTS_KERNELS=$KERNELS is not available here (gr1 kernels, above)" >&2
  exit 2
fi
if [ ! -f "$CONFIG" ]; then
  echo "results: config $CONFIG not found" >&2
  exit 2
fi

mkdir -p "$DIR/logs" "$CACHE"
# Outputs of an earlier run are replaced, never mixed with this one's.
rm -rf "${DIR:?}/test" "$DIR/summary.json" "$DIR/timings.json" "$DIR"/logs/*.log \
       "$DIR"/*.eval.json "$DIR"/*.gallery.png "$DIR/base.safetensors" \
       "$DIR/base.safetensors.report.json"
for arm in "${ARMS[@]}"; do rm -rf "${DIR:?}/$arm"; done

now() { if [ -n "${EPOCHREALTIME:-}" ]; then printf '%s' "$EPOCHREALTIME"; else date +%s.%N; fi; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

T_START=$(now)
TIMINGS=()  # '"name": seconds' entries, in step order

# run_step NAME CMD...: runs CMD with its output in DIR/logs/NAME.log, timed.
run_step() {
  local name=$1
  shift
  local log="$DIR/logs/$name.log" t0 secs
  echo "results: [$name] $*"
  t0=$(now)
  if ! "$@" >"$log" 2>&1; then
    echo "results: step $name failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  secs=$(since "$t0")
  TIMINGS+=("\"$name\": $secs")
  echo "results: [$name] done in ${secs} s"
}

# The machine the run measured, and the kernels it ran: with native kernels a
# base pretrained from scratch depends on the CPU (other kernels round
# differently, and the difference grows over thousands of steps:
# docs/results.md, "From scratch on another machine"); the seconds always
# do. Quotes and backslashes are dropped.
machine_field() { tr -d '"\\' | head -1; }
MACHINE_CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | machine_field)
MACHINE_BLAS=$(printf '%s' "$KERNELS_JSON" | sed -n 's/.*"openblas_core":"\([^"]*\)".*/\1/p' | machine_field)
MACHINE_CORES=$(nproc 2>/dev/null || echo 0)

write_timings() {
  local cached=$1 file="$DIR/timings.json" total
  total=$(since "$T_START")
  {
    printf '{\n'
    for t in "${TIMINGS[@]}"; do printf '  %s,\n' "$t"; done
    printf '  "base_cached": %s,\n' "$cached"
    printf '  "machine": {"cpu": "%s", "cores": %s, "openblas_core": "%s", "kernels": %s},\n' \
      "$MACHINE_CPU" "$MACHINE_CORES" "$MACHINE_BLAS" "$KERNELS_JSON"
    printf '  "total_seconds": %s,\n' "$total"
    printf '  "n_test": %s,\n' "$N"
    printf '  "rl_steps": %s,\n' "${STEPS:-null}"
    printf '  "config": "%s"\n' "$CONFIG"
    printf '}\n'
  } >"$file.tmp"
  mv "$file.tmp" "$file"
}

# (a) base
# The config enters the key without what pretraining never reads: the bus,
# actor and learner sections (but learner.init_checkpoint) and rollout.g1/g2
# (pretraining's own rollouts are one per item), nor its comment lines and
# blank lines. So a change to the RL arms' settings keeps the cached base;
# any other change in the file makes a new one. The config's path is not part
# of the key.
pretrain_relevant_config() {
  awk '
    /^[[:space:]]*(#|$)/ { next }
    /^[^[:space:]#][^:]*:/ { sec = $1; sub(/:.*/, "", sec) }
    sec == "bus" || sec == "actor" { next }
    sec == "learner" && !/^learner:/ && !/^[[:space:]]+init_checkpoint:/ { next }
    sec == "rollout" && /^[[:space:]]+g[12]:/ { next }
    { print }' "$1"
}
key=$( {
  pretrain_relevant_config "$CONFIG"
  for f in "${CACHE_SOURCES[@]}"; do
    if [ -f "$f" ]; then printf 'file %s\n' "$f"; cat "$f"; else printf 'missing %s\n' "$f"; fi
  done
  printf 'pretrain_steps %s\n' "${PRETRAIN_STEPS:-config}"
  printf 'kernels %s\n' "$KERNELS"
} | sha256sum | cut -c1-16)
cached="$CACHE/base-$key.safetensors"
base_cached=false
if [ -n "${RESULTS_BASE:-}" ]; then
  # An explicitly given base (e.g. one pretrained with other settings): used
  # as is, reported like a cached one; its report must lie beside it.
  if [ ! -f "$RESULTS_BASE" ] || [ ! -f "$RESULTS_BASE.report.json" ]; then
    echo "results: RESULTS_BASE=$RESULTS_BASE: the checkpoint or its .report.json is missing" >&2
    exit 2
  fi
  echo "results: [base] using the given base $RESULTS_BASE"
  t0=$(now)
  cp "$RESULTS_BASE" "$DIR/base.safetensors"
  cp "$RESULTS_BASE.report.json" "$DIR/base.safetensors.report.json"
  TIMINGS+=("\"base\": $(since "$t0")")
  base_cached=true
elif [ -f "$cached" ] && [ -f "$cached.report.json" ] && [ "${RESULTS_NO_CACHE:-0}" != 1 ]; then
  echo "results: [base] using the cached base $cached (key: sha256 of $CONFIG less its RL-only settings, and of ${CACHE_SOURCES[*]})"
  t0=$(now)
  cp "$cached" "$DIR/base.safetensors"
  cp "$cached.report.json" "$DIR/base.safetensors.report.json"
  TIMINGS+=("\"base\": $(since "$t0")")
  base_cached=true
else
  pretrain_args=(pretrain --config "$CONFIG" --out "$DIR/base.safetensors")
  if [ -n "$PRETRAIN_STEPS" ]; then pretrain_args+=(--steps "$PRETRAIN_STEPS"); fi
  run_step base "$BIN" "${pretrain_args[@]}"
  cp "$DIR/base.safetensors" "$cached.tmp"
  cp "$DIR/base.safetensors.report.json" "$cached.report.json.tmp"
  mv "$cached.report.json.tmp" "$cached.report.json"
  mv "$cached.tmp" "$cached"
  echo "results: [base] cached as $cached"
fi

# (b) the held-out test split
run_step synth "$BIN" data synth --split test --n "$N" --out "$DIR/test" --config "$CONFIG"

# (c) three RL runs from the base, one after the other (each uses both cores)
for arm in "${ARMS[@]}"; do
  args=(launch --config "$CONFIG" --actors "$ACTORS" --run-dir "$DIR/$arm"
        --set "learner.init_checkpoint=$DIR/base.safetensors")
  case $arm in
    direct_grpo) args+=(--set rollout.mode=direct) ;;
    srpo) args+=(--set learner.advantage=srpo) ;;
  esac
  if [ -n "$STEPS" ]; then args+=(--steps "$STEPS"); fi
  run_step "rl_$arm" "$BIN" "${args[@]}"
done

# (d) the base (grounded) and each arm's final policy on the same test split.
# An evaluation runs on one core, so they run in two lanes side by side; each
# step's own seconds are recorded (they overlap), and "evals_wall" is the
# time the lanes took together.
eval_args() {  # eval_args ARM -> the gr1 eval arguments of that arm
  local arm=$1 mode=grounded ckpt="$DIR/$1/policy.safetensors"
  if [ "$arm" = base ]; then ckpt="$DIR/base.safetensors"; fi
  if [ "$arm" = direct_grpo ]; then mode=direct; fi
  printf '%s\n' eval --checkpoint "$ckpt" --data "$DIR/test" --mode "$mode" --config "$CONFIG" \
    --out "$DIR/$arm.eval.json" --gallery "$DIR/$arm.gallery.png" --threads 1
}
# eval_lane ARM...: evaluates the arms in turn; each writes
# DIR/logs/eval_<arm>.status ("<exit status> <seconds>").
eval_lane() {
  local arm t0 rc
  local -a a
  for arm in "$@"; do
    mapfile -t a < <(eval_args "$arm")
    echo "results: [eval_$arm] $BIN ${a[*]}"
    t0=$(now)
    if "$BIN" "${a[@]}" >"$DIR/logs/eval_$arm.log" 2>&1; then rc=0; else rc=$?; fi
    echo "$rc $(since "$t0")" >"$DIR/logs/eval_$arm.status"
    [ "$rc" = 0 ] || return 0  # the rest of this lane is not run
  done
}
t_evals=$(now)
rm -f "$DIR"/logs/eval_*.status
eval_lane base direct_grpo &
eval_lane ground_r1 srpo &
wait
for arm in base "${ARMS[@]}"; do
  st="$DIR/logs/eval_$arm.status"
  if [ ! -f "$st" ]; then
    echo "results: step eval_$arm did not run (an earlier evaluation in its lane failed)" >&2
    exit 1
  fi
  read -r rc secs <"$st"
  rm -f "$st"
  if [ "$rc" != 0 ]; then
    echo "results: step eval_$arm failed (exit $rc); last lines of $DIR/logs/eval_$arm.log:" >&2
    tail -n 30 "$DIR/logs/eval_$arm.log" >&2
    exit 1
  fi
  TIMINGS+=("\"eval_$arm\": $secs")
  echo "results: [eval_$arm] done in ${secs} s"
done
TIMINGS+=("\"evals_wall\": $(since "$t_evals")")

# (e) summary.json and the table (it reads the timings so far)
write_timings "$base_cached"
echo "results: [summarize] $BIN results summarize --dir $DIR --config $CONFIG --locate-items $LOCATE_ITEMS"
t0=$(now)
if ! "$BIN" results summarize --dir "$DIR" --config "$CONFIG" --locate-items "$LOCATE_ITEMS" 2>&1 |
  tee "$DIR/logs/summarize.log"; then
  echo "results: step summarize failed (log: $DIR/logs/summarize.log)" >&2
  exit 1
fi
TIMINGS+=("\"summarize\": $(since "$t0")")
write_timings "$base_cached"

echo
echo "results: timings (s), also in $DIR/timings.json:"
for t in "${TIMINGS[@]}"; do echo "  ${t//\"/}"; done
echo "  total: $(since "$T_START") s"
if [ "$base_cached" = true ]; then
  echo "  (the base came from the cache; its own pretraining time is timings.base_pretrain_seconds in $DIR/summary.json)"
fi
echo "results: $DIR/summary.json, curves $DIR/<arm>/curves.png, galleries $DIR/*.gallery.png"
