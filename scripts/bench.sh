#!/usr/bin/env bash
# Benchmarks, printing figures (not pass/fail):
#   scripts/bench.sh dump [SIZE_MB ...]    dump pipeline throughput and peak memory (default 128 512)
#   scripts/bench.sh scheduler [N]         one scheduler tick over N databases in Azurite (default 10000)
#   scripts/bench.sh restore [SIZE_MB ...] restore pipeline vs `psql -f` of the same dump (default 1024)
#   scripts/bench.sh history [ROWS [DBS]]  history reads through the API with ROWS backups in Azurite
#                                          (default 100000 over 100 databases) against their targets
#   scripts/bench.sh workers [DBS [ROWS]]  backups per minute with 1, 2 and 3 workers on one queue
#                                          (default 60 databases of 40000 rows)
source "$(dirname "$0")/lib.sh"
install_all
build_components
build_host
log "building the benchmarks"
(cd "$ROOT" && cargo build --release --bins)
export DILUX_PG_BINDIR="$(pg_bindir)" DILUX_ROOT="$ROOT"
what="${1:-dump}"; shift || true
case "$what" in
  dump) cd "$ROOT" && "$CARGO_TARGET_DIR/release/bench-dump" "$@" ;;
  scheduler) cd "$ROOT" && "$CARGO_TARGET_DIR/release/bench-scheduler" "$@" ;;
  restore) cd "$ROOT" && "$CARGO_TARGET_DIR/release/bench-restore" "$@" ;;
  history) cd "$ROOT" && "$CARGO_TARGET_DIR/release/bench-history" "$@" ;;
  workers) cd "$ROOT" && "$CARGO_TARGET_DIR/release/bench-workers" "$@" ;;
  *) echo "usage: scripts/bench.sh dump|scheduler|restore|history|workers [args]" >&2; exit 2 ;;
esac
