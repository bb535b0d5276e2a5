#!/usr/bin/env bash
# Every GPU check of the flat layout in one call, for a session that is lent a GPU for a few minutes.
#
#   OUT=/some/dir bash benchmarks/gpu_run.sh          # on the GPU machine, from the repository root
#   SMOKE=1 OUT=/tmp/gpu_smoke bash benchmarks/gpu_run.sh   # a dry run of the same steps at toy sizes (any backend)
#
# Stages, each under its own time limit so that one slow compile cannot eat the others' time:
#   1. correctness on this backend: the flat-layout and parity tests;
#   2. benchmarks/step.py at the real shapes (tiny, gpt2-124m, many-2000x64k, gpt-1.3b): Optax, pytree, flat;
#   3. the pytree path's solo_above on gpt2-124m (the GPU default, 1M elements, is an estimate; on many-2000x64k,
#      64K-element leaves, every threshold above 64K packs them all, as the default does).
# Limits add up to 570 s: one device call of at most 600 s.
# Results land in $OUT as JSON and logs; record them in benchmarks/RESULTS.md with the date and the machine.
set -u
OUT=${OUT:?set OUT to a directory for the results}
mkdir -p "$OUT"
PY=${PYTHON:-python}
if [ -n "${SMOKE:-}" ]; then
  SIZES="--scale 0.01 --max-leaves 40 --rounds 1 --steps 2"
  TESTS="tests/test_flat.py"
else
  SIZES=""
  TESTS="tests/test_flat.py tests/test_parity.py"
fi

stage() {  # name, limit in seconds, command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc in $((SECONDS - t0)) s"
  tail -n 25 "$OUT/$name.log"
}

$PY -c "import jax, optax; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())"
stage tests 120 $PY -m pytest -q -x $TESTS
stage step 300 $PY -m benchmarks.step $SIZES --json "$OUT/step.json"
for solo in 65536 4194304 4611686018427387904; do
  stage "solo_$solo" 50 $PY -m benchmarks.step --shapes gpt2-124m --variants optax,pytree \
    --solo-above "$solo" $SIZES --json "$OUT/solo_$solo.json"
done
