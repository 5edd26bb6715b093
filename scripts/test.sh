#!/usr/bin/env bash
# Runs every test: formatting, lints, the Rust unit and integration tests, then both services
# started by the launcher and driven by the official MCP TypeScript SDK client over Streamable
# HTTP and over the HTTP+SSE transport.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# Real clients against the real servers, on ports of their own.
OAUTH_PORT=${CHECK_OAUTH_PORT:-15000}
MCP_PORT=${CHECK_MCP_PORT:-15001}
cargo build --quiet --bins --examples
TARGET=${CARGO_TARGET_DIR:-target}
(cd clients/ts && npm ci --no-audit --no-fund --silent)
log=$(mktemp)
OAUTH_SERVER_PORT=$OAUTH_PORT OAUTH_ISSUER=http://127.0.0.1:$OAUTH_PORT \
MCP_SERVER_PORT=$MCP_PORT MCP_SERVER_URL=http://127.0.0.1:$MCP_PORT \
  "$TARGET/debug/mcp-oauth" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MCP_PORT/health" >/dev/null && curl -sf "http://127.0.0.1:$OAUTH_PORT/health" >/dev/null && break
  sleep 0.2
done
status=0
for transport in streamable sse; do
  node clients/ts/flow.mjs "http://127.0.0.1:$MCP_PORT/mcp/v1" "$transport" || status=1
done
"$TARGET/debug/examples/oauth_flow" "http://127.0.0.1:$MCP_PORT" >/dev/null || { echo "FAIL the oauth_flow example"; status=1; }
if [ $status -ne 0 ]; then
  echo "--- server log ---"; tail -n 50 "$log"
fi
exit $status
