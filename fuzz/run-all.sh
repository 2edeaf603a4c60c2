#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30), one at a time,
# one process each, from its seeds (fuzz/seeds/TARGET) and a scratch corpus
# (fuzz/corpus/TARGET, not committed). Exits non-zero if any target crashed,
# leaked, ran out of memory or took over 10 s on one input; the input is
# left in fuzz/artifacts/TARGET/. Prints each target's executions.
#
# Uses the nightly toolchain if installed; otherwise the default toolchain
# with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags; stable ships the
# AddressSanitizer runtime). Installs cargo-fuzz from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-30}"

if rustup toolchain list | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

"${fuzz[@]}" build
failed=()
summary=()
for target in $("${fuzz[@]}" list); do
  mkdir -p "corpus/$target"
  dirs=("corpus/$target")
  [ -d "seeds/$target" ] && dirs+=("seeds/$target")
  log="$(mktemp)"
  echo "== $target: ${SECONDS_PER_TARGET} s"
  if "${fuzz[@]}" run "$target" "${dirs[@]}" -- \
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
