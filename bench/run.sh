#!/usr/bin/env bash
# The benchmark: starts both services in release mode (each pinned to core 0), obtains tokens,
# drives them with wrk (pinned to core 1) on loopback, and prints a table: requests/s, p50 and
# p99 latency, errors, each figure's ratio to a bare axum JSON-RPC handler (the machine's
# ceiling, run by this script too), and each service's resident memory before and after; then
# the same scenarios with every store on PostgreSQL, beside them; tools/call once more through
# rmcp's own transport (what the direct path of mcp::direct buys); and, as a peer, the official
# MCP TypeScript SDK's stateless server with its bearer middleware (bench/ts-peer) on the same
# core, tokens and tool work. Raw RS256 signing is measured once before the runs and again in
# alternating pairs with the token endpoint.
#
# usage: bench/run.sh            DURATION=10 CONNECTIONS=32 RUNS=3 (median of RUNS)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
RUNS=${RUNS:-3}
OAUTH_PORT=${BENCH_OAUTH_PORT:-25000}
MCP_PORT=${BENCH_MCP_PORT:-25001}
CEILING_PORT=${BENCH_CEILING_PORT:-25002}
TARGET=${CARGO_TARGET_DIR:-target}
OAUTH=http://127.0.0.1:$OAUTH_PORT
MCP=http://127.0.0.1:$MCP_PORT
SERVER_CPU=0
LOAD_CPU=$(( $(nproc) > 1 ? 1 : 0 ))
work=$(mktemp -d)

if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --workspace --bins --examples

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

export OAUTH_ISSUER=$OAUTH OAUTH_SERVER_PORT=$OAUTH_PORT MCP_SERVER_URL=$MCP MCP_SERVER_PORT=$MCP_PORT
export RUST_LOG=warn STORE_MAX_ENTRIES=1000000 MCP_MAX_SESSIONS=100000
# The benchmark is one address and one client flooding on purpose: no rate limits.
export RATE_LIMIT_PER_ADDRESS=0 RATE_LIMIT_PER_CLIENT=0 RATE_LIMIT_REGISTER_PER_ADDRESS=0 RATE_LIMIT_MCP_PER_SUBJECT=0
# Starts the services (and the ceiling, once); with $1 a PostgreSQL URL, on that database.
start_services() {
  local db=${1:-} es_db=${2:-}
  DATABASE_URL=$db taskset -c $SERVER_CPU "$TARGET/release/oauth-server" >"$work/oauth.log" 2>&1 & oauth_pid=$!; pids+=($oauth_pid)
  until curl -sf $OAUTH/health >/dev/null; do sleep 0.1; done
  DATABASE_URL=$db taskset -c $SERVER_CPU "$TARGET/release/mcp-server" >"$work/mcp.log" 2>&1 & mcp_pid=$!; pids+=($mcp_pid)
  DATABASE_URL=$es_db OAUTH_SERVER_PORT=$ES_PORT OAUTH_ISSUER=http://127.0.0.1:$ES_PORT SIGNING_ALG=ES256 \
    taskset -c $SERVER_CPU "$TARGET/release/oauth-server" >"$work/es256.log" 2>&1 & es_pid=$!; pids+=($es_pid)
  until curl -sf $MCP/health >/dev/null && curl -sf http://127.0.0.1:$ES_PORT/health >/dev/null; do sleep 0.1; done
}
ES_PORT=${BENCH_ES256_PORT:-25003}
taskset -c $SERVER_CPU "$TARGET/release/examples/bench_ceiling" $CEILING_PORT & ceiling_pid=$!; pids+=($ceiling_pid)
until curl -sf -X POST -H 'content-type: application/json' -d '{}' http://127.0.0.1:$CEILING_PORT/rpc >/dev/null; do sleep 0.1; done
start_services

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
oauth_idle=$(rss $oauth_pid); mcp_idle=$(rss $mcp_pid)

# Credentials, tokens, sessions, codes and the wrk scripts for the running services.
prepare() {
# Credentials and tokens.
reg=$(curl -sf -X POST $OAUTH/oauth/register -H 'content-type: application/json' \
  -d '{"client_name":"bench","grant_types":["client_credentials","authorization_code","refresh_token"],"redirect_uris":["http://127.0.0.1:9/cb"],"scope":"read write"}')
client_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$reg")
client_secret=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$reg")
basic=$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)
es_reg=$(curl -sf -X POST http://127.0.0.1:$ES_PORT/oauth/register -H 'content-type: application/json' \
  -d '{"client_name":"bench","grant_types":["client_credentials"],"scope":"read write"}')
es_basic=$(python3 -c 'import json,sys,base64; r=json.loads(sys.argv[1]); print(base64.b64encode((r["client_id"]+":"+r["client_secret"]).encode()).decode())' "$es_reg")
token=$(curl -sf -X POST $OAUTH/oauth/token -u "$client_id:$client_secret" \
  -d "grant_type=client_credentials&scope=read write&resource=$MCP/mcp/v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# Three items for get_data and GET /api/data to read (their store read is part of each call).
for n in 1 2 3; do
  curl -sf -o /dev/null -X POST $MCP/api/data -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"name\":\"bench item $n\",\"value\":$n.5}"
done
# One session per connection, as real clients have: requests take them in turn.
: >"$work/sessions.txt"
for _ in $(seq 1 "$CONNECTIONS"); do
  session=$(curl -si -X POST $MCP/mcp/v1 -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    -H "authorization: Bearer $token" \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | awk 'tolower($1)=="mcp-session-id:" {print $2}' | tr -d '\r')
  curl -sf -o /dev/null -X POST $MCP/mcp/v1 -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    -H "mcp-session-id: $session" -H 'mcp-protocol-version: 2025-11-25' -H "authorization: Bearer $token" \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  echo "$session" >>"$work/sessions.txt"
done

# Authorization codes for the exchange scenario, made in advance (demo mode approves at once).
VERIFIER=bench-verifier-bench-verifier-bench-verifier-0123
CODES=${CODES:-30000}
python3 - "$OAUTH_PORT" "$client_id" "$VERIFIER" "$CODES" >"$work/codes.txt" <<'PY'
import base64, hashlib, http.client, sys, urllib.parse
port, client_id, verifier, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
q = urllib.parse.urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1:9/cb",
    "code_challenge": challenge, "code_challenge_method": "S256", "scope": "read write"})
conn = http.client.HTTPConnection("127.0.0.1", int(port))
for _ in range(n):
    conn.request("GET", "/oauth/authorize?" + q)
    r = conn.getresponse(); r.read()
    loc = urllib.parse.urlparse(r.getheader("location"))
    print(urllib.parse.parse_qs(loc.query)["code"][0])
PY

lua() { # name method body [headers...]: a wrk script file
  local file="$work/$1.lua" method=$2 body=$3; shift 3
  { echo "wrk.method = \"$method\""
    [ -n "$body" ] && printf 'wrk.body = [[%s]]\n' "$body"
    for h in "$@"; do echo "wrk.headers[\"${h%%:*}\"] = \"${h#*: }\""; done; } >"$file"
  echo "$file"
}
rpc_call='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_data","arguments":{}}}'
stateless_call='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_data","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
ceiling_lua=$(lua ceiling POST "$rpc_call" "Content-Type: application/json")
token_lua=$(lua token POST "grant_type=client_credentials&scope=read" "Content-Type: application/x-www-form-urlencoded" "Authorization: Basic $basic")
session_lua="$work/session.lua"
cat >"$session_lua" <<LUA
local sessions, i = {}, 0
for line in io.lines("$work/sessions.txt") do sessions[#sessions + 1] = line end
wrk.method = "POST"
wrk.body = [[$rpc_call]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
request = function()
  i = i % #sessions + 1
  wrk.headers["Mcp-Session-Id"] = sessions[i]
  return wrk.format()
end
LUA
stateless_lua=$(lua stateless POST "$stateless_call" "Content-Type: application/json" "Accept: application/json, text/event-stream" \
  "Authorization: Bearer $token" "MCP-Protocol-Version: 2026-07-28" "Mcp-Method: tools/call" "Mcp-Name: get_data")
# The same two calls with a weighted Accept, which the direct path leaves to rmcp's transport:
# what the direct path buys, measured in the same run.
sed 's#"application/json, text/event-stream"#"application/json;q=1, text/event-stream;q=1"#' "$session_lua" >"$work/session_rmcp.lua"
stateless_rmcp_lua=$(lua stateless_rmcp POST "$stateless_call" "Content-Type: application/json" "Accept: application/json;q=1, text/event-stream;q=1" \
  "Authorization: Bearer $token" "MCP-Protocol-Version: 2026-07-28" "Mcp-Method: tools/call" "Mcp-Name: get_data")
api_lua=$(lua api GET "" "Authorization: Bearer $token")
es_lua=$(lua es256 POST "grant_type=client_credentials&scope=read" "Content-Type: application/x-www-form-urlencoded" "Authorization: Basic $es_basic")
cat >"$work/exchange.lua" <<LUA
local codes, i = {}, 0
for line in io.lines("$work/codes.txt") do codes[#codes + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
request = function()
  i = i + 1
  if i > #codes then i = 1 end
  return wrk.format(nil, nil, nil, "grant_type=authorization_code&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&code_verifier=$VERIFIER&code=" .. codes[i])
end
LUA
}
prepare

# One wrk run: prints "rps p50_ms p99_ms errors".
run() {
  local url=$1 script=$2 duration=${3:-$DURATION}
  local out; out=$(taskset -c $LOAD_CPU wrk -t1 -c"$CONNECTIONS" -d"${duration}s" --latency -s "$script" "$url")
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % label, out, re.M)
    if not m: return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
print(f"{rps:.0f} {ms('50%'):.2f} {ms('99%'):.2f} {errors}")
PY
}
# The median (by requests/s) of RUNS runs.
median() {
  local results=() r
  for _ in $(seq 1 "$RUNS"); do results+=("$(run "$@")"); done
  printf '%s\n' "${results[@]}" | sort -n -k1 | sed -n "$(( (RUNS + 1) / 2 ))p"
}

echo "benchmarking: $CONNECTIONS connections, ${DURATION}s, median of $RUNS; servers on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU" >&2
sign_rate=$(taskset -c $SERVER_CPU "$TARGET/release/examples/bench_sign" 5 | sed 's/signs_per_sec=//')
declare -A R
# Every scenario but the ceiling, into the array named $1.
measure() {
  local -n out=$1
  out[token]=$(median $OAUTH/oauth/token "$token_lua")
  out[es256]=$(median http://127.0.0.1:$ES_PORT/oauth/token "$es_lua")
  out[exchange]=$(run $OAUTH/oauth/token "$work/exchange.lua" 5)
  out[session]=$(median $MCP/mcp/v1 "$session_lua")
  out[stateless]=$(median $MCP/mcp/v1 "$stateless_lua")
  out[api]=$(median $MCP/api/data "$api_lua")
}
R[ceiling]=$(median http://127.0.0.1:$CEILING_PORT/rpc "$ceiling_lua")
measure R
# Raw signing and the RS256 token endpoint in alternating pairs (RUNS of each, 5 s): the ratio of
# each pair, so that a change in the machine's speed between the two moves both of its figures.
pairs=()
for _ in $(seq 1 "$RUNS"); do
  s=$(taskset -c $SERVER_CPU "$TARGET/release/examples/bench_sign" 5 | sed 's/signs_per_sec=//')
  t=$(run $OAUTH/oauth/token "$token_lua" 5 | cut -d' ' -f1)
  pairs+=("$(printf '%.0f' "$(echo "100 * $t / $s" | bc -l)") $s $t")
done
paired=$(printf '%s\n' "${pairs[@]}" | sort -n -k1 | sed -n "$(( (RUNS + 1) / 2 ))p")
R[session_rmcp]=$(median $MCP/mcp/v1 "$work/session_rmcp.lua")
R[stateless_rmcp]=$(median $MCP/mcp/v1 "$stateless_rmcp_lua")
oauth_after=$(rss $oauth_pid); mcp_after=$(rss $mcp_pid)

# The peer: the official TypeScript SDK, installed from its lockfile, verifying the same tokens.
PEER_PORT=${BENCH_PEER_PORT:-25004}
(cd bench/ts-peer && npm ci --no-audit --no-fund --silent)
# The peer holds the same items for the same subject (the token's sub).
peer_items=$(python3 -c '
import base64, json, sys, urllib.request
token = sys.argv[1]
claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
req = urllib.request.Request(sys.argv[2] + "/api/data", headers={"Authorization": "Bearer " + token})
print(json.dumps({claims["sub"]: json.load(urllib.request.urlopen(req))["items"]}))' "$token" "$MCP")
PEER_ITEMS=$peer_items taskset -c $SERVER_CPU node bench/ts-peer/server.mjs $PEER_PORT $OAUTH $OAUTH/.well-known/jwks.json $MCP/mcp/v1 \
  >"$work/peer.log" 2>&1 & peer_pid=$!; pids+=($peer_pid)
until [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:$PEER_PORT/mcp)" = 401 ]; do sleep 0.1; done
# Both answer get_data with the same data, or the comparison is void.
same_data=$(python3 - "$MCP/mcp/v1" "http://127.0.0.1:$PEER_PORT/mcp" "$token" "$stateless_call" "$rpc_call" <<'PY'
import json, sys, urllib.request
def content(url, body, version, extra):
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Authorization": "Bearer " + sys.argv[3], "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": version, **extra})
    text = urllib.request.urlopen(req).read().decode()
    if not text.lstrip().startswith("{"):
        text = [l[5:] for l in text.splitlines() if l.startswith("data:") and l[5:].strip()][-1]
    return json.loads(text)["result"]["structuredContent"]
ours = content(sys.argv[1], sys.argv[4], "2026-07-28", {"Mcp-Method": "tools/call", "Mcp-Name": "get_data"})
peer = content(sys.argv[2], sys.argv[5], "2025-11-25", {})
print("yes" if ours == peer and ours["count"] == 3 else f"no: {ours} {peer}")
PY
)
[ "$same_data" = yes ] || { echo "the peer's get_data answer differs from ours: $same_data" >&2; exit 1; }
peer_lua=$(lua peer POST "$rpc_call" "Content-Type: application/json" "Accept: application/json, text/event-stream" \
  "Authorization: Bearer $token" "MCP-Protocol-Version: 2025-11-25")
R[peer]=$(median http://127.0.0.1:$PEER_PORT/mcp "$peer_lua")
kill $peer_pid 2>/dev/null || true

# The same scenarios with every store on PostgreSQL (DATABASE_URL): databases of the benchmark's
# own on the server of BENCH_DATABASE_URL (default: the one on 127.0.0.1:5432), dropped after.
PG_ADMIN=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
declare -A P
pg_ran=false
if command -v psql >/dev/null && psql "$PG_ADMIN" -qAtc 'select 1' >/dev/null 2>&1; then
  kill $oauth_pid $mcp_pid $es_pid 2>/dev/null || true
  wait $oauth_pid $mcp_pid $es_pid 2>/dev/null || true
  for db in mcp_oauth_bench mcp_oauth_bench_es; do
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  done
  trap 'cleanup; for db in mcp_oauth_bench mcp_oauth_bench_es; do psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; done' EXIT
  start_services "${PG_ADMIN%/*}/mcp_oauth_bench" "${PG_ADMIN%/*}/mcp_oauth_bench_es"
  CODES=${PG_CODES:-10000} prepare
  measure P
  pg_oauth_after=$(rss $oauth_pid); pg_mcp_after=$(rss $mcp_pid)
  pg_ran=true
else
  echo "no PostgreSQL at BENCH_DATABASE_URL (or no psql): the PostgreSQL column is left out" >&2
fi

ceiling_rps=$(echo "${R[ceiling]}" | cut -d' ' -f1)
printf '\n| scenario | requests/s | p50 ms | p99 ms | errors | ratio to ceiling | PostgreSQL requests/s | p99 ms | errors | PostgreSQL / memory |\n|---|---|---|---|---|---|---|---|---|---|\n'
for key in ceiling token es256 exchange session stateless session_rmcp stateless_rmcp api peer; do
  case $key in
    ceiling) name="bare axum JSON-RPC POST (ceiling)";;
    token) name="token endpoint, client_credentials (RS256)";;
    es256) name="token endpoint, client_credentials (ES256, SIGNING_ALG=ES256)";;
    exchange) name="authorization-code exchange (5 s, codes made in advance)";;
    session) name="tools/call get_data, in a session";;
    stateless) name="tools/call get_data, stateless (2026-07-28)";;
    session_rmcp) name="the same, in a session, through rmcp's transport (weighted Accept)";;
    stateless_rmcp) name="the same, stateless, through rmcp's transport (weighted Accept)";;
    api) name="GET /api/data";;
    peer) name="official TypeScript SDK $(node -p 'require("./bench/ts-peer/node_modules/@modelcontextprotocol/sdk/package.json").version'), stateless tools/call, requireBearerAuth + jose RS256";;
  esac
  read -r rps p50 p99 errors <<<"${R[$key]}"
  if $pg_ran && [ -n "${P[$key]:-}" ]; then
    read -r prps _ pp99 perrors <<<"${P[$key]}"
    pg=$(printf '%s | %s | %s | %.2f' "$prps" "$pp99" "$perrors" "$(echo "$prps / $rps" | bc -l)")
  else
    pg="| | |"
  fi
  printf '| %s | %s | %s | %s | %s | %.3f | %s |\n' "$name" "$rps" "$p50" "$p99" "$errors" "$(echo "$rps / $ceiling_rps" | bc -l)" "$pg"
done
peer_rps=$(echo "${R[peer]}" | cut -d' ' -f1)
printf '\ntools/call get_data against the TypeScript SDK peer: %.1fx stateless, %.1fx in a session\n' \
  "$(echo "$(echo "${R[stateless]}" | cut -d' ' -f1) / $peer_rps" | bc -l)" \
  "$(echo "$(echo "${R[session]}" | cut -d' ' -f1) / $peer_rps" | bc -l)"
token_rps=$(echo "${R[token]}" | cut -d' ' -f1)
printf '\nraw RS256 signing, key parsed once, one thread: %s signs/s; token endpoint at %.0f%% of it\n' \
  "$sign_rate" "$(echo "100 * $token_rps / $sign_rate" | bc -l)"
printf 'in alternating pairs (signing, then the endpoint, 5 s each): median %s%%; each pair (%% signs/s tokens/s): %s\n' \
  "$(echo "$paired" | cut -d' ' -f1)" "$(printf '%s; ' "${pairs[@]}" | sed 's/; $//')"
printf 'resident memory (MiB): oauth-server %s idle, %s after; mcp-server %s idle, %s after\n' \
  "$oauth_idle" "$oauth_after" "$mcp_idle" "$mcp_after"
if $pg_ran; then
  printf 'on PostgreSQL, after the runs (MiB): oauth-server %s, mcp-server %s\n' "$pg_oauth_after" "$pg_mcp_after"
  es_pg=$(echo "${P[es256]}" | cut -d' ' -f1)
  printf 'client_credentials on PostgreSQL (ES256): %s grants/s on one core (Keycloak sizing: 120 per vCPU)\n' "$es_pg"
fi
printf 'machine: %s, %s cores\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)"
