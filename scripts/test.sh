#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), then formatting, lints, the Rust
# unit and integration tests (the store suites also on PostgreSQL), then both services
# started by the launcher and driven by the official MCP TypeScript SDK client over Streamable
# HTTP and over the HTTP+SSE transport.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need and a fresh machine lacks (Node.js, Chromium, PostgreSQL, ...).
scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The HTTP and end-to-end suites once more, every store on PostgreSQL (the store contract suites
# already ran on both backends above).
TEST_STORE=postgres cargo test -p oauth-server --test api
TEST_STORE=postgres cargo test --test e2e

# Real clients against the real servers, on ports of their own: first in demo mode, then with
# sign-in and consent (DEMO_MODE=false), where headless Chromium fills the forms.
OAUTH_PORT=${CHECK_OAUTH_PORT:-15000}
MCP_PORT=${CHECK_MCP_PORT:-15001}
cargo build --quiet --workspace --bins --examples
TARGET=${CARGO_TARGET_DIR:-target}
(cd clients/ts && npm ci --no-audit --no-fund --silent)
venv=${TARGET}/pyenv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r clients/python/requirements.txt
log=$(mktemp)
# A test identity provider (its key, the file that trusts it, its pre-registered client) for the
# Python SDK's enterprise-managed authorization client.
enterprise=$(mktemp -d)
"$venv/bin/python" clients/python/enterprise.py setup "$enterprise"
OAUTH_SERVER_PORT=$OAUTH_PORT OAUTH_ISSUER=http://127.0.0.1:$OAUTH_PORT \
MCP_SERVER_PORT=$MCP_PORT MCP_SERVER_URL=http://127.0.0.1:$MCP_PORT \
TRUSTED_IDENTITY_PROVIDERS_FILE=$enterprise/idps.json CLIENTS_FILE=$enterprise/clients.json \
  "$TARGET/debug/mcp-oauth" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MCP_PORT/health" >/dev/null && curl -sf "http://127.0.0.1:$OAUTH_PORT/health" >/dev/null && break
  sleep 0.2
done
status=0
failures=()
# A failed step is named again at the end, so that the last lines of a run say what failed.
failed() { failures+=("$1"); status=1; }
for transport in streamable sse sse-at-mcp-url; do
  node clients/ts/flow.mjs "http://127.0.0.1:$MCP_PORT/mcp/v1" "$transport" || failed "TypeScript SDK client ($transport)"
done
AUTH_METHOD=client_secret_post node clients/ts/flow.mjs "http://127.0.0.1:$MCP_PORT/mcp/v1" streamable || failed "TypeScript SDK client (client_secret_post)"
for transport in streamable sse sse-at-mcp-url; do
  "$venv/bin/python" clients/python/flow.py "http://127.0.0.1:$MCP_PORT/mcp/v1" "$transport" || failed "Python SDK client ($transport)"
done
"$venv/bin/python" clients/python/enterprise.py run "$enterprise" "http://127.0.0.1:$MCP_PORT/mcp/v1" \
  "http://127.0.0.1:$OAUTH_PORT" || failed "Python SDK enterprise-managed authorization"
node clients/ts/dpop.mjs "http://127.0.0.1:$OAUTH_PORT" "http://127.0.0.1:$MCP_PORT/mcp/v1" || failed "DPoP client"
clients/conformance/run.sh "http://localhost:$MCP_PORT/mcp/v1" "http://127.0.0.1:$OAUTH_PORT" || failed "MCP conformance suite"
token=$(curl -sf -X POST "http://127.0.0.1:$MCP_PORT/mcp/v1/tools/call" -H 'content-type: application/json' \
  -d '{"name":"oauth_authenticate","arguments":{}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["structuredContent"]["access_token"])')
clients/conformance/inspector.sh "http://127.0.0.1:$MCP_PORT/mcp/v1" "$token" || failed "MCP Inspector"
# Each service's OpenAPI document against what it answers (schemathesis, bounded examples).
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
"$venv/bin/st" run "http://127.0.0.1:$OAUTH_PORT/openapi.json" -n 25 --checks $checks >"$log.st1" 2>&1 \
  && echo "OpenAPI check (oauth-server): $(grep -o '[0-9]* passed' "$log.st1" | tail -1)" \
  || { echo "FAIL OpenAPI check (oauth-server)"; tail -n 40 "$log.st1"; failed "OpenAPI check (oauth-server)"; }
"$venv/bin/st" run "http://127.0.0.1:$MCP_PORT/openapi.json" -n 25 -H "Authorization: Bearer $token" --checks $checks >"$log.st2" 2>&1 \
  && echo "OpenAPI check (mcp-server): $(grep -o '[0-9]* passed' "$log.st2" | tail -1)" \
  || { echo "FAIL OpenAPI check (mcp-server)"; tail -n 40 "$log.st2"; failed "OpenAPI check (mcp-server)"; }
"$TARGET/debug/examples/oauth_flow" "http://127.0.0.1:$MCP_PORT" >/dev/null || { echo "FAIL the oauth_flow example"; failed "the oauth_flow example"; }
if [ ${#failures[@]} -gt 0 ]; then
  echo "--- server log ---"; tail -n 50 "$log"
fi
kill $server 2>/dev/null || true; wait $server 2>/dev/null || true

# Load: many clients authorizing and calling tools at once for a minute; no errors, flat memory.
bench/load.sh 60 16 || failed "load test"

# Two instances of each service on one PostgreSQL database behind HAProxy, every client through
# the balancer.
scripts/instances.sh 20 || failed "two instances behind HAProxy"

# Sign-in mode: a users file made with `oauth-server hash-password`, a random SECRET_KEY.
users=$(mktemp); signin_log=$(mktemp)
password="check-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
hash=$(printf '%s\n' "$password" | "$TARGET/debug/oauth-server" hash-password)
printf '[{"username":"alice","name":"Alice Example","email":"alice@example.com","password_hash":"%s"}]\n' "$hash" >"$users"
DEMO_MODE=false USERS_FILE=$users SECRET_KEY=$(head -c 48 /dev/urandom | base64) \
OAUTH_SERVER_PORT=$OAUTH_PORT OAUTH_ISSUER=http://127.0.0.1:$OAUTH_PORT \
MCP_SERVER_PORT=$MCP_PORT MCP_SERVER_URL=http://127.0.0.1:$MCP_PORT \
  "$TARGET/debug/mcp-oauth" >"$signin_log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MCP_PORT/health" >/dev/null && curl -sf "http://127.0.0.1:$OAUTH_PORT/health" >/dev/null && break
  sleep 0.2
done
before=${#failures[@]}
node clients/ts/signin.mjs "http://127.0.0.1:$OAUTH_PORT" alice "$password" || failed "sign-in pages (Chromium)"
for transport in streamable sse sse-at-mcp-url; do
  SIGNIN_USER=alice SIGNIN_PASSWORD=$password node clients/ts/flow.mjs "http://127.0.0.1:$MCP_PORT/mcp/v1" "$transport" || failed "TypeScript SDK client ($transport, sign-in)"
done
for transport in streamable sse sse-at-mcp-url; do
  SIGNIN_USER=alice SIGNIN_PASSWORD=$password "$venv/bin/python" clients/python/flow.py "http://127.0.0.1:$MCP_PORT/mcp/v1" "$transport" || failed "Python SDK client ($transport, sign-in)"
done
if [ ${#failures[@]} -gt "$before" ]; then
  echo "--- server log (sign-in mode) ---"; tail -n 50 "$signin_log"
fi
if [ $status -ne 0 ]; then
  echo "--- failed ---"; printf 'FAIL %s\n' "${failures[@]}"
fi
exit $status
