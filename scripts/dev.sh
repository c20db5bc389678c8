#!/usr/bin/env bash
# Starts Dilux Backup locally: installs what is missing, builds, starts Azurite and the app (API, UI
# and the backup worker), and prints the URL. Ctrl-C stops everything it started.
source "$(dirname "$0")/lib.sh"

PORT="${DILUX_PORT:-3000}"
STATE="$ROOT/.dilux"
mkdir -p "$STATE/azurite"

step "step 1 of 3: tools (apt, npm, PyPI, cargo)" "about 2 minutes" install_all
step "step 2 of 3: the Wasm components and the web UI" "about 6 minutes" build_components
step "step 3 of 3: the dumper-host (native, with wasmtime)" "about 9 minutes" build_host

# Local secrets, made once and kept (0600) so sealed passwords stay readable across restarts; shared
# tokens are 43 random characters (the app refuses fewer than 32), and shorter ones from older files
# are made again.
token() { head -c 32 /dev/urandom | base64 | tr -d '/+='; }
touch "$STATE/dev.env"; chmod 600 "$STATE/dev.env"
grep -q '^SPIN_VARIABLE_SEAL_KEY=' "$STATE/dev.env" ||
  echo "SPIN_VARIABLE_SEAL_KEY=$(head -c 32 /dev/urandom | base64)" >> "$STATE/dev.env"
grep -q '^SPIN_VARIABLE_AUTH_MODE=' "$STATE/dev.env" || echo "SPIN_VARIABLE_AUTH_MODE=dev" >> "$STATE/dev.env"
for v in TICK_TOKEN DUMPER_TOKEN AUTH_DEV_SECRET; do
  if ! grep -Eq "^SPIN_VARIABLE_$v=.{32,}$" "$STATE/dev.env"; then
    sed -i "/^SPIN_VARIABLE_$v=/d" "$STATE/dev.env"
    echo "SPIN_VARIABLE_$v=$(token)" >> "$STATE/dev.env"
  fi
done
set -a; source "$STATE/dev.env"; set +a

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if (exec 3<>/dev/tcp/127.0.0.1/10000) 2>/dev/null; then
  log "Azurite already listening on 10000-10002; using it"
else
  log "starting Azurite (data in .dilux/azurite)"
  "$AZURITE_BIN" --silent --disableTelemetry --skipApiVersionCheck --location "$STATE/azurite" \
    --blobPort 10000 --queuePort 10001 --tablePort 10002 > "$STATE/azurite.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/10002) 2>/dev/null && break; sleep 0.5; done
fi
export SPIN_VARIABLE_STORAGE_CONNECTION_STRING="${SPIN_VARIABLE_STORAGE_CONNECTION_STRING:-UseDevelopmentStorage=true}"

log "starting the app"
(cd "$ROOT" && "$DILUX_HOST_BIN" --manifest spin.toml --listen "127.0.0.1:$PORT" --job-runner target/wasm/dilux_job_runner.wasm \
  --notifiers notifiers.toml) &
pids+=($!)
for _ in $(seq 1 120); do
  if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then break; fi
  sleep 0.5
done
echo
echo "Dilux Backup is running at http://127.0.0.1:$PORT/  (API: http://127.0.0.1:$PORT/api/health)"
echo "Open it in a browser and sign in (dev mode: any email, choose a role)."
echo "API token for scripts: curl -s -XPOST localhost:$PORT/api/auth/dev-token -d '{\"email\":\"you@example.com\",\"role\":\"admin\"}'"
echo "Press Ctrl-C to stop."
wait "${pids[-1]}"
