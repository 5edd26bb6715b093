#!/usr/bin/env bash
# MCP Inspector's command-line mode (@modelcontextprotocol/inspector --cli) against the MCP server,
# given a bearer token: it lists the tools and calls one.
#
# usage: clients/conformance/inspector.sh MCP_URL TOKEN
set -uo pipefail
cd "$(dirname "$0")"
url=$1 token=$2
[ -x node_modules/.bin/node ] || npm ci --no-audit --no-fund --silent
export PATH=$PWD/node_modules/.bin:$PATH   # Inspector needs Node 22, installed from npm
export MCP_CATALOG_PATH=$(mktemp -u)
passed=0; failed=0
check() { if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi; }

list=$(timeout 60 mcp-inspector --cli "$url" --transport http --method tools/list --header "Authorization: Bearer $token" 2>/dev/null)
echo "$list" | python3 -c 'import json,sys; t=json.load(sys.stdin)["tools"]; sys.exit(0 if len(t)==6 else 1)' 2>/dev/null
check "Inspector CLI lists the six tools" $?
call=$(timeout 60 mcp-inspector --cli "$url" --transport http --method tools/call --tool-name create_data \
  --tool-arg name=Inspector value=5 --header "Authorization: Bearer $token" 2>/dev/null)
echo "$call" | python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if r["structuredContent"]["name"]=="Inspector" and not r["isError"] else 1)' 2>/dev/null
check "Inspector CLI calls create_data" $?
echo "MCP Inspector CLI: $passed passed, $failed failed"
[ $failed = 0 ]
