#!/usr/bin/env bash
# oh-matrix's entrypoint for the offline Agent Canvas image (harness/images/canvas.py).
#
# It does what the official image's docker/entrypoint.sh does (OpenHands/agent-canvas at
# ce37b38bb, and OpenHands/OpenHands docker/entrypoint.sh after the move; docs/canvas.md),
# step by step, with the same settings and defaults:
#   - the ports: PORT (ingress, 8000), AGENT_SERVER_PORT (18000), AUTOMATION_PORT (18001),
#     from /opt/agent-canvas/defaults.env, made from the release's config/defaults.json;
#   - the state under $HOME/.openhands: OH_PERSISTENCE_DIR, OH_CONVERSATIONS_PATH,
#     OH_BASH_EVENTS_DIR; OH_SECRET_KEY and the API key generated once and kept in
#     agent-canvas/secret-key.txt and agent-canvas/api-key.txt when not given;
#   - LOCAL_BACKEND_API_KEY becomes the agent-server's OH_SESSION_API_KEYS_0 and the
#     automation server's keys (one credential, header X-Session-API-Key);
#   - the agent-server, then the automation server (uvicorn, SQLite under ~/.openhands),
#     a wait of up to 60 s for both ports, then the ingress (the release's
#     static-server.mjs) with the official route table;
#   - the container lives as long as the ingress does.
# The two lines a harness reads (a backend that did not come up, the ingress gone) are worded
# as the official script words them. What differs is said where it differs.
set -uo pipefail

say() { printf '[agent-canvas] %s\n' "$*"; }

if [ -f /opt/agent-canvas/defaults.env ]; then
  . /opt/agent-canvas/defaults.env
fi

PORT="${PORT:-${CONFIG_PROXY_PORT:-8000}}"
AGENT_SERVER_PORT="${AGENT_SERVER_PORT:-${CONFIG_AGENT_SERVER_PORT:-18000}}"
AUTOMATION_PORT="${AUTOMATION_PORT:-${CONFIG_AUTOMATION_PORT:-18001}}"
AGENT_CANVAS_BASE_PATH="${AGENT_CANVAS_BASE_PATH:-${CONFIG_CANVAS_BASE_PATH:-/canvas}}"
VSCODE_PORT="${OH_VSCODE_PORT:-${VSCODE_PORT:-${CONFIG_VSCODE_PORT:-8001}}}"
VSCODE_BASE_PATH="${OH_VSCODE_BASE_PATH:-${VSCODE_BASE_PATH:-${CONFIG_VSCODE_BASE_PATH:-/vscode}}}"
export OH_VSCODE_PORT="$VSCODE_PORT" OH_VSCODE_BASE_PATH="$VSCODE_BASE_PATH"

STATE="${HOME}/.openhands"
CANVAS_STATE="${STATE}/${CONFIG_STATE_SUBDIR:-agent-canvas}"
export OH_PERSISTENCE_DIR="${OH_PERSISTENCE_DIR:-$STATE}"
export OH_CONVERSATIONS_PATH="${OH_CONVERSATIONS_PATH:-$STATE/${CONFIG_CONVERSATIONS:-agent-canvas/conversations}}"
export OH_BASH_EVENTS_DIR="${OH_BASH_EVENTS_DIR:-$STATE/${CONFIG_BASH_EVENTS:-agent-canvas/bash_events}}"

# A value given in the environment wins; else the one kept from an earlier start; else a new one.
kept() {
  local file="$1"
  if [ ! -f "$file" ]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file")
    say "generated $(basename "$file") (kept in $file)" >&2  # not into the value: kept() is read with $(...)
  fi
  cat "$file"
}

if [ -z "${OH_SECRET_KEY:-}" ]; then
  OH_SECRET_KEY="$(kept "$CANVAS_STATE/secret-key.txt")"
fi
export OH_SECRET_KEY

if [ -z "${LOCAL_BACKEND_API_KEY:-}" ] && [ -z "${OH_SESSION_API_KEYS_0:-}" ]; then
  LOCAL_BACKEND_API_KEY="$(kept "$CANVAS_STATE/api-key.txt")"
fi
export OH_SESSION_API_KEYS_0="${OH_SESSION_API_KEYS_0:-${LOCAL_BACKEND_API_KEY:-}}"
KEY="$OH_SESSION_API_KEYS_0"
if [ -z "$KEY" ]; then
  say "ERROR: no session API key" >&2
  exit 1
fi
export OPENHANDS_AUTOMATION_API_KEY="${OPENHANDS_AUTOMATION_API_KEY:-$KEY}"
export AUTOMATION_LOCAL_API_KEY="${AUTOMATION_LOCAL_API_KEY:-$KEY}"
export AUTOMATION_AGENT_SERVER_API_KEY="${AUTOMATION_AGENT_SERVER_API_KEY:-$KEY}"
export OPENHANDS_REMOTE_WS_READY_REQUIRED="${OPENHANDS_REMOTE_WS_READY_REQUIRED:-false}"
# Difference: the official entrypoint exports the release's PostHog key to the automation
# server unless VITE_DO_NOT_TRACK=1; this image sets VITE_DO_NOT_TRACK=1 (canvas.py), so
# no key is exported and nothing is sent anywhere.
if [ "${VITE_DO_NOT_TRACK:-}" != "1" ] && [ -n "${CONFIG_POSTHOG_API_KEY:-}" ]; then
  export AUTOMATION_POSTHOG_API_KEY="${AUTOMATION_POSTHOG_API_KEY:-$CONFIG_POSTHOG_API_KEY}"
  export AUTOMATION_POSTHOG_HOST="${AUTOMATION_POSTHOG_HOST:-${CONFIG_POSTHOG_HOST:-}}"
fi
export AGENT_SERVER_URL="${AGENT_SERVER_URL:-http://127.0.0.1:$AGENT_SERVER_PORT}"
export AUTOMATION_AGENT_SERVER_URL="${AUTOMATION_AGENT_SERVER_URL:-http://127.0.0.1:$AGENT_SERVER_PORT}"
export OH_EXTRA_PYTHON_PATH="${OH_EXTRA_PYTHON_PATH:-/opt/agent-canvas/tools}"

CHILDREN=()
stop() {
  say "shutting down"
  for pid in "${CHILDREN[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit 0
}
trap stop EXIT SIGINT SIGTERM

say "agent-server on port $AGENT_SERVER_PORT"
openhands-agent-server --port "$AGENT_SERVER_PORT" &
CHILDREN+=($!)

say "automation server on port $AUTOMATION_PORT"
export AUTOMATION_FRONTEND_DIR=""
export FILE_STORE="${FILE_STORE:-local}"
export LOCAL_STORAGE_PATH="${LOCAL_STORAGE_PATH:-$STATE/storage}"
export AUTOMATION_BASE_URL="${AUTOMATION_BASE_URL:-http://127.0.0.1:$PORT}"
export AUTOMATION_WORKSPACE_BASE="${AUTOMATION_WORKSPACE_BASE:-$STATE/workspaces}"
mkdir -p "$LOCAL_STORAGE_PATH" "$AUTOMATION_WORKSPACE_BASE"
if [ -z "${AUTOMATION_DB_URL:-}" ]; then
  db="$STATE/${CONFIG_AUTOMATION_DB:-automation/automations.db}"
  mkdir -p "$(dirname "$db")"
  export AUTOMATION_DB_URL="sqlite+aiosqlite:///$db"
fi
uvicorn openhands.automation.app:app --host 0.0.0.0 --port "$AUTOMATION_PORT" &
CHILDREN+=($!)

listening() {  # port name: up to 60 s, as the official entrypoint waits
  local waited=0
  until (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    if [ "$waited" -ge 60 ]; then say "WARNING: $2 on port $1 did not become ready within 60s"; return 1; fi
  done
  say "$2 is ready on port $1"
}
listening "$AGENT_SERVER_PORT" "Agent Server" & w1=$!
listening "$AUTOMATION_PORT" "Automation Server" & w2=$!
wait "$w1" "$w2"

SERVICES="$(node /opt/agent-canvas/runtime-services-info.mjs --mode docker --agent-host-alias 127.0.0.1 \
  --agent-server-url "$AGENT_SERVER_URL" --automation-url "$AUTOMATION_BASE_URL")"
to_agent="http://127.0.0.1:$AGENT_SERVER_PORT"
# The editor's route only where the release's ingress knows it (1.16.0 on; 1.13.0's static
# server exits on an unknown flag, and its entrypoint routes no editor).
EDITOR=()
if grep -q -- '--vscode-base-path' /opt/agent-canvas/static-server.mjs; then
  EDITOR=(--route "$VSCODE_BASE_PATH=http://127.0.0.1:$VSCODE_PORT" --vscode-base-path "$VSCODE_BASE_PATH")
fi
say "ingress on port $PORT"
node /opt/agent-canvas/static-server.mjs --port "$PORT" --host :: \
  --dir /opt/agent-canvas/frontend --base-path "$AGENT_CANVAS_BASE_PATH" \
  --session-api-key "$KEY" --runtime-services-info "$SERVICES" \
  --route "/api/automation=http://127.0.0.1:$AUTOMATION_PORT" \
  --route "/api=$to_agent" --route "/server_info=$to_agent" --route "/sockets=$to_agent" \
  --route "/alive=$to_agent" --route "/health=$to_agent" --route "/ready=$to_agent" \
  --route "/docs=$to_agent" --route "/redoc=$to_agent" --route "/openapi.json=$to_agent" \
  "${EDITOR[@]}" &
INGRESS=$!
CHILDREN+=("$INGRESS")
say "all services started: http://0.0.0.0:$PORT/"
while kill -0 "$INGRESS" 2>/dev/null; do
  sleep 10 & wait $!
done
say "ERROR: Static server (PID $INGRESS) exited" >&2
exit 1
