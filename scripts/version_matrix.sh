#!/usr/bin/env bash
# Checks adamlab against the lowest and the newest dependency versions that pyproject.toml allows.
#
# Usage:
#   scripts/version_matrix.sh lowest     # the declared floors: jax/jaxlib 0.6.0, numpy 1.25.2, optax 0.2.7
#   scripts/version_matrix.sh newest     # the newest jax/jaxlib/optax/numpy pip can install
#   scripts/version_matrix.sh custom     # versions from the environment, for bisecting, e.g.
#       JAX=0.4.35 NUMPY=1.26.4 OPTAX=0.2.3 scripts/version_matrix.sh custom
#   scripts/version_matrix.sh lowest newest   # several in a row
#
# Environment overrides (any config): JAX, JAXLIB (defaults to JAX), NUMPY, OPTAX, FLAX, CHEX
#   (a version, or "" for "let pip pick"; FLAX=none skips flax, and its tests then skip),
#   REPO (default: this script's repository), PYTHON (default python3),
#   TESTS (default: the fast subset below), KEEP_VENV=1 to reuse an existing venv of the same name.
# Each config gets a fresh venv in /tmp/adamlab-vm-<config> and a copy of HEAD in /tmp/adamlab-vm-src-<config>
# (git archive, so nothing is written into the repository). Uncommitted changes are not tested.
# One summary line per config is printed at the end and appended to /tmp/adamlab-vm-summary.txt.
set -uo pipefail

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"  # the repository whose HEAD is tested
PYTHON="${PYTHON:-python3}"
TESTS="${TESTS:-tests/test_parity.py tests/test_signatures.py tests/test_compat.py}"
SUMMARY_FILE=/tmp/adamlab-vm-summary.txt
summaries=()

run_config() {
  local cfg="$1" jax jaxlib numpy optax flax chex
  case "$cfg" in
    lowest) jax="${JAX-0.6.0}"; numpy="${NUMPY-1.25.2}"; optax="${OPTAX-0.2.7}"; flax="${FLAX-}"; chex="${CHEX-}" ;;
    newest|custom) jax="${JAX-}"; numpy="${NUMPY-}"; optax="${OPTAX-}"; flax="${FLAX-}"; chex="${CHEX-}" ;;
    *) echo "unknown config '$cfg' (lowest, newest or custom)" >&2; return 2 ;;
  esac
  jaxlib="${JAXLIB-$jax}"
  local tag="$cfg"
  [ "$cfg" = custom ] && tag="custom-jax${jax:-new}-np${numpy:-new}-optax${optax:-new}"
  local venv="/tmp/adamlab-vm-$tag" src="/tmp/adamlab-vm-src-$tag" log="/tmp/adamlab-vm-$tag.log"
  : >"$log"
  echo "=== $tag: venv $venv, source $src, log $log"

  pin() { if [ -n "$2" ]; then echo "$1==$2"; else echo "$1"; fi; }
  local reqs=("$(pin jax "$jax")" "$(pin jaxlib "$jaxlib")" "$(pin numpy "$numpy")" "$(pin optax "$optax")"
              "$(pin chex "$chex")" "pytest>=7" "hypothesis>=6.80")
  [ "$flax" != none ] && reqs+=("$(pin flax "$flax")")
  local upgrade=()
  [ "$cfg" = newest ] && upgrade=(--upgrade --upgrade-strategy eager)

  local status="ok" result=""
  if [ "${KEEP_VENV:-0}" != 1 ] || [ ! -x "$venv/bin/python" ]; then
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" >>"$log" 2>&1 || status="venv-failed"
  fi
  if [ "$status" = ok ]; then
    echo "--- pip install ${reqs[*]}" | tee -a "$log"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: "${upgrade[@]}" \
        "${reqs[@]}" >>"$log" 2>&1 || status="install-failed"
  fi
  if [ "$status" = ok ]; then
    rm -rf "$src"; mkdir -p "$src"
    git -C "$REPO" archive HEAD | tar -x -C "$src" || status="copy-failed"
  fi
  if [ "$status" = ok ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$src" \
        >>"$log" 2>&1 || status="adamlab-install-failed"
  fi
  local versions="(not installed)"
  if [ -x "$venv/bin/python" ]; then
    versions="$("$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
out = [f"python={sys.version.split()[0]}"]
for d in ["jax", "jaxlib", "numpy", "optax", "chex", "flax", "ml_dtypes", "scipy", "pytest", "hypothesis"]:
    try:
        out.append(f"{d}={md.version(d)}")
    except md.PackageNotFoundError:
        out.append(f"{d}=-")
print(" ".join(out))
PY
)"
    echo "--- installed: $versions" | tee -a "$log"
  fi
  if [ "$status" = ok ]; then
    echo "--- pytest $TESTS" | tee -a "$log"
    # shellcheck disable=SC2086
    (cd "$src" && COLUMNS=200 "$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" -rfEs $TESTS) >>"$log" 2>&1
    local rc=$?
    result="$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)|no tests ran|^(=+ )?[0-9]+ errors?' "$log" | tail -1 | tr -d '=' | xargs)"
    [ -z "$result" ] && result="pytest rc=$rc, no summary line"
    [ $rc -ne 0 ] && status="tests-failed(rc=$rc)"
    # The first failure's reason, for the summary.
    local first
    first="$(grep -E '^(FAILED|ERROR) ' "$log" | head -1 | cut -c1-160)"
    local reason
    reason="$(grep -E '^E  ' "$log" | head -1 | sed 's/^E *//' | cut -c1-200)"
    [ -n "$reason" ] && first="$first [$reason]"
    [ -n "$first" ] && result="$result; first: $first"
  else
    result="$(grep -E 'ERROR|error:' "$log" | head -2 | tr '\n' ' ' | cut -c1-300)"
  fi
  tail -25 "$log"
  local line="[$tag] $(date -u +%Y-%m-%dT%H:%MZ) status=$status | $versions | $result"
  summaries+=("$line")
  echo "$line" >>"$SUMMARY_FILE"
}

[ $# -ge 1 ] || { sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 2; }
overall=0
for cfg in "$@"; do
  run_config "$cfg" || overall=1
done
echo
echo "=== summary"
for s in "${summaries[@]}"; do
  echo "$s"
  case "$s" in *"status=ok "*) ;; *) overall=1 ;; esac
done
exit $overall
