#!/usr/bin/env bash
# Benchmarks the dump pipeline against real PostgreSQL, MariaDB and Azurite and prints throughput and
# peak memory for each database size in MB (default: 128 512). Peak memory must stay flat as size grows.
source "$(dirname "$0")/lib.sh"
install_all
export DILUX_PG_BINDIR="$(pg_bindir)" DILUX_ROOT="$ROOT"
cd "$ROOT" && cargo run --release -q -p dilux-e2e --bin bench-dump -- "$@"
