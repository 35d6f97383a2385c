#!/usr/bin/env bash
# Reproducer for the abort at deno's exit after the test summary (glibc "corrupted size vs.
# prev_size in fastbins", WebGPU on llvmpipe): runs the webgpu test files N times and counts
# runs that exited non-zero, and those whose output has glibc's message or a signal.
# Usage: .ci/webgpu_exit_repro.sh [N] [test files...]   (PARALLEL=1: deno test --parallel, as
# deno task test runs them)
set -u
cd "$(dirname "$0")/.."
export NO_COLOR=1 DENO_TLS_CA_STORE="${DENO_TLS_CA_STORE:-system,mozilla}"
n=${1:-5}
shift || true
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/group_sparsity_webgpu_test.ts test/moe_layer_test.ts)
fail=0 abort=0
keep=$(mktemp -d)
for i in $(seq 1 "$n"); do
  out=$(deno test -A ${PARALLEL:+--parallel} "${files[@]}" 2>&1)
  rc=$?
  summary=$(printf '%s\n' "$out" | grep -E '^(ok|FAILED) \|' | tail -n 1)
  flagged=""
  if [ "$rc" -ne 0 ]; then fail=$((fail + 1)) flagged=1; fi
  if printf '%s\n' "$out" | grep -Eq 'corrupted|double free|malloc\(|Aborted|Segmentation'; then
    abort=$((abort + 1)) flagged=1
  fi
  note=""
  if [ -n "$flagged" ]; then
    printf '%s\n' "$out" >"$keep/run$i.log"
    note=" (output: $keep/run$i.log: $(printf '%s\n' "$out" | grep -Em1 'corrupted|double free|malloc\(|Aborted|Segmentation'))"
  fi
  echo "run $i: exit $rc; $summary$note"
done
echo "$n runs: $fail exited non-zero, $abort with a glibc/abort message"
