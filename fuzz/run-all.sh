#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30), one at a time,
# one process each, from its seeds (fuzz/seeds/TARGET) and a scratch corpus
# (fuzz/corpus/TARGET, not committed). Installs the nightly toolchain and
# cargo-fuzz if missing. Exits non-zero if any target crashed, leaked, ran
# out of memory or took longer than 10 s on one input; the input is left in
# fuzz/artifacts/TARGET/. A line per target gives its executions.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-30}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

cargo +nightly fuzz build
failed=()
summary=()
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target"
  dirs=("corpus/$target")
  [ -d "seeds/$target" ] && dirs+=("seeds/$target")
  log="$(mktemp)"
  echo "== $target: ${SECONDS_PER_TARGET} s"
  if cargo +nightly fuzz run "$target" "${dirs[@]}" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
    grep -E -A20 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -60 || tail -40 "$log"
  fi
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  summary+=("$target: $status, $runs executions in ${SECONDS_PER_TARGET} s")
  rm -f "$log"
done

printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
