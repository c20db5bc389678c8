#!/usr/bin/env bash
# Benchmarks, printing figures (not pass/fail):
#   scripts/bench.sh dump [SIZE_MB ...]    dump pipeline throughput and peak memory (default 128 512)
#   scripts/bench.sh scheduler [N]         one scheduler tick over N databases in Azurite (default 10000)
source "$(dirname "$0")/lib.sh"
install_all
build_components
build_host
export DILUX_PG_BINDIR="$(pg_bindir)" DILUX_ROOT="$ROOT"
what="${1:-dump}"; shift || true
case "$what" in
  dump) cd "$ROOT" && "$CARGO_TARGET_DIR/release/bench-dump" "$@" ;;
  scheduler) cd "$ROOT" && "$CARGO_TARGET_DIR/release/bench-scheduler" "$@" ;;
  *) echo "usage: scripts/bench.sh dump|scheduler [args]" >&2; exit 2 ;;
esac
