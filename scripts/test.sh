#!/usr/bin/env bash
# Runs every test: unit tests of all crates, then the end-to-end suite against real Azurite,
# PostgreSQL, MariaDB, pg_dump/mariadb-dump and the running app, then the API fuzzer (schemathesis
# against the OpenAPI document, every check). Installs what is missing first.
source "$(dirname "$0")/lib.sh"

install_all
check_style
build_components
build_host
build_tests
export DILUX_PG_BINDIR="$(pg_bindir)"
export DILUX_ROOT="$ROOT"

log "running tests"
cd "$ROOT"
# --release and the default members: the same build as build_host (the e2e suite drives that binary).
# The Wasm components are exercised through it; their own logic lives in the native crates.
cargo test --release -- --test-threads=2

log "fuzzing the API against its OpenAPI document"
bash "$ROOT/scripts/fuzz-api.sh"
