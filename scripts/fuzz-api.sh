#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document with schemathesis (PyPI, pinned): every check, a fixed
# seed, the app on a private Azurite. Prints schemathesis' summary; exits non-zero on any failure.
# Part of scripts/test.sh: any failure (a 5xx, a response outside its schema, an undocumented status, a
# schema-valid request refused or an invalid one accepted) fails the suite.
#   bash scripts/fuzz-api.sh [extra schemathesis options]
source "$(dirname "$0")/lib.sh"

FUZZ="$ROOT/scripts/fuzz"
VENV="$HOME/.cache/dilux/venv-schemathesis"
# Every package pinned (fuzz/requirements.txt); the venv is made again when that list changes.
want="$(sha256sum "$FUZZ/requirements.txt" | cut -c1-16)"
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$want" ]; then
  log "installing schemathesis (PyPI, versions in scripts/fuzz/requirements.txt)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$FUZZ/requirements.txt"
  echo "$want" > "$VENV/.requirements"
fi
install_node_tools
build_components
build_host

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
# Four distinct free ports, held together while they are picked (one at a time, the kernel may hand the same port
# out twice); one of them can still be taken before Azurite binds it, so Azurite is started again on new ones.
ports() {
  python3 -c 'import socket
held = [socket.socket() for _ in range(4)]
for s in held: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in held])'
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for attempt in 1 2 3; do
  read -r blob queue table app < <(ports)
  "$AZURITE_BIN" --silent --disableTelemetry --skipApiVersionCheck --location "$work/azurite" \
    --blobPort "$blob" --queuePort "$queue" --tablePort "$table" > "$work/azurite.log" 2>&1 &
  azurite=$!
  for _ in $(seq 1 60); do
    listening "$blob" && listening "$queue" && listening "$table" && break
    kill -0 "$azurite" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$azurite" 2>/dev/null && listening "$blob" && listening "$queue" && listening "$table"; then
    pids+=("$azurite")
    break
  fi
  kill "$azurite" 2>/dev/null || true
  echo "Azurite did not start on ports $blob/$queue/$table (attempt $attempt): $(tail -n 1 "$work/azurite.log")" >&2
  [ "$attempt" = 3 ] && exit 1
done
key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
acct="devstoreaccount1"
export SPIN_VARIABLE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=$acct;AccountKey=$key;\
BlobEndpoint=http://127.0.0.1:$blob/$acct;QueueEndpoint=http://127.0.0.1:$queue/$acct;TableEndpoint=http://127.0.0.1:$table/$acct;"
token() { head -c 32 /dev/urandom | base64 | tr -d '/+='; }
export SPIN_VARIABLE_SEAL_KEY="$(head -c 32 /dev/urandom | base64)" SPIN_VARIABLE_TICK_TOKEN="$(token)"
export SPIN_VARIABLE_DUMPER_TOKEN="$(token)" SPIN_VARIABLE_AUTH_MODE=dev SPIN_VARIABLE_AUTH_DEV_SECRET="$(token)"
export DILUX_TICKS=off
(cd "$ROOT" && exec "$DILUX_HOST_BIN" --manifest spin.toml --listen "127.0.0.1:$app") > "$work/app.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$app/api/health" >/dev/null && break; sleep 0.5; done
bearer=$(curl -sf -XPOST "http://127.0.0.1:$app/api/auth/dev-token" -d '{"email":"fuzz@example.com","role":"admin"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
log "fuzzing http://127.0.0.1:$app/api/openapi.json"
# From the scratch folder: schemathesis keeps a cache of earlier failures in its working directory, and
# every run must be like CI's first.
cd "$work"
# PYTHONPATH: fuzz/sitecustomize.py, a fix for threads parsing at once in Python 3.11; fuzz/dilux_hooks.py,
# generators for the formats the API defines (age recipients).
SCHEMATHESIS_HOOKS=dilux_hooks PYTHONPATH="$FUZZ" "$VENV/bin/st" --config-file "$FUZZ/schemathesis.toml" run "http://127.0.0.1:$app/api/openapi.json" --header "Authorization: Bearer $bearer" \
  --checks all --max-examples 20 --workers 2 --request-timeout 10 --seed 1 "$@"
