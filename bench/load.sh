#!/usr/bin/env bash
# The load test: starts both services with the launcher, then many clients at once register,
# authorize with PKCE, open MCP sessions, call tools, refresh and revoke, for a bounded time
# (examples/load.rs). It fails on any error and when the server's resident memory keeps growing
# after the warm-up. Tokens and codes live seconds here, not days, so that expiry and sweeping
# reach their steady state (about twice the longest lifetime, 20 s) well before the warm-up sample
# at half the run; rate limits are off (one address, on purpose).
#
# usage: bench/load.sh [seconds] [clients]     PROFILE=release (default debug: what CI built)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-60}
CLIENTS=${2:-16}
PROFILE=${PROFILE:-debug}
OAUTH_PORT=${LOAD_OAUTH_PORT:-26000}
MCP_PORT=${LOAD_MCP_PORT:-26001}
TARGET=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bins --examples
else
  cargo build --quiet --bins --examples
fi
bin=$(cd "$TARGET/$PROFILE" && pwd)/mcp-oauth
log=$(mktemp)
# The launcher runs from an empty directory, so no .env applies.
dir=$(mktemp -d)
(cd "$dir" && exec env \
  OAUTH_SERVER_PORT=$OAUTH_PORT OAUTH_ISSUER=http://127.0.0.1:$OAUTH_PORT \
  MCP_SERVER_PORT=$MCP_PORT MCP_SERVER_URL=http://127.0.0.1:$MCP_PORT \
  RATE_LIMIT_PER_ADDRESS=0 RATE_LIMIT_PER_CLIENT=0 RATE_LIMIT_REGISTER_PER_ADDRESS=0 \
  RATE_LIMIT_MCP_PER_SUBJECT=0 \
  ACCESS_TOKEN_TTL_SECS=10 REFRESH_TOKEN_TTL_SECS=10 AUTH_CODE_TTL_SECS=5 SWEEP_INTERVAL_SECS=2 \
  RUST_LOG=warn "$bin") >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
up=0
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MCP_PORT/health" >/dev/null && curl -sf "http://127.0.0.1:$OAUTH_PORT/health" >/dev/null && { up=1; break; }
  sleep 0.2
done
if [ $up -ne 1 ]; then echo "FAIL load: the services did not start"; tail -n 30 "$log"; exit 1; fi
status=0
"$TARGET/$PROFILE/examples/load" "http://127.0.0.1:$MCP_PORT" "$SECS" "$CLIENTS" "$server" || status=1
if [ $status -ne 0 ]; then echo "--- server log ---"; tail -n 30 "$log"; fi
exit $status
