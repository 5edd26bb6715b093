#!/usr/bin/env bash
# Two instances of each service, as separate processes on one PostgreSQL database, behind HAProxy
# (deploy/haproxy.cfg, round-robin), driven through the balancer by the official TypeScript and
# Python SDK clients, the oauth_flow example and the load test. The database is the run's own,
# dropped afterwards. Needs the debug build (scripts/test.sh makes it), PostgreSQL and haproxy
# (scripts/setup.sh installs them).
#
# usage: scripts/instances.sh [load seconds]
set -euo pipefail
cd "$(dirname "$0")/.."

LOAD_SECS=${1:-20}
TARGET=${CARGO_TARGET_DIR:-target}
PG_ADMIN=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=mcp_oauth_instances_$$
export LB_OAUTH_PORT=${LB_OAUTH_PORT:-17000} LB_MCP_PORT=${LB_MCP_PORT:-17001}
export OAUTH1_PORT=17010 OAUTH2_PORT=17011 MCP1_PORT=17020 MCP2_PORT=17021
psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# What every instance shares: the balancer's addresses, the database, SECRET_KEY.
export DATABASE_URL=${PG_ADMIN%/*}/$DB
export OAUTH_ISSUER=http://127.0.0.1:$LB_OAUTH_PORT MCP_SERVER_URL=http://127.0.0.1:$LB_MCP_PORT
export SECRET_KEY=$(head -c 48 /dev/urandom | base64)
export RUST_LOG=warn TRUSTED_PROXIES=127.0.0.1
export RATE_LIMIT_PER_ADDRESS=0 RATE_LIMIT_PER_CLIENT=0 RATE_LIMIT_REGISTER_PER_ADDRESS=0 RATE_LIMIT_MCP_PER_SUBJECT=0
"$TARGET/debug/mcp-oauth" migrate >/dev/null
for i in 1 2; do
  port_var=OAUTH${i}_PORT
  OAUTH_SERVER_PORT=${!port_var} "$TARGET/debug/oauth-server" >"$work/oauth$i.log" 2>&1 & pids+=($!)
done
for i in 1 2; do
  port_var=MCP${i}_PORT
  MCP_SERVER_PORT=${!port_var} "$TARGET/debug/mcp-server" >"$work/mcp$i.log" 2>&1 & pids+=($!)
done
haproxy -f deploy/haproxy.cfg -db >"$work/haproxy.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$LB_MCP_PORT/health" >/dev/null && curl -sf "http://127.0.0.1:$LB_OAUTH_PORT/health" >/dev/null \
    && curl -sf "http://127.0.0.1:$MCP2_PORT/health" >/dev/null && curl -sf "http://127.0.0.1:$OAUTH2_PORT/health" >/dev/null && break
  sleep 0.2
done

status=0
mcp="http://127.0.0.1:$LB_MCP_PORT/mcp/v1"
for transport in streamable sse sse-at-mcp-url; do
  node clients/ts/flow.mjs "$mcp" "$transport" || status=1
done
for transport in streamable sse; do
  "$TARGET/pyenv/bin/python" clients/python/flow.py "$mcp" "$transport" || status=1
done
"$TARGET/debug/examples/oauth_flow" "http://127.0.0.1:$LB_MCP_PORT" >/dev/null && echo "ok   oauth_flow through the balancer" \
  || { echo "FAIL oauth_flow through the balancer"; status=1; }
# Zero errors through the balancer (memory is judged by bench/load.sh on one process; here each
# instance also holds, for a few seconds, the rmcp sessions it restored and another one closed).
"$TARGET/debug/examples/load" "http://127.0.0.1:$LB_MCP_PORT" "$LOAD_SECS" 8 || status=1
for p in "${pids[@]:0:4}"; do
  printf 'instance %s: RSS %s MiB\n' "$p" "$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$p/status)"
done
if [ $status -ne 0 ]; then
  for f in "$work"/*.log; do echo "--- $f ---"; tail -n 20 "$f"; done
fi
echo "Two instances behind HAProxy: $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit $status
