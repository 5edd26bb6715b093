#!/usr/bin/env bash
# The MCP conformance suite (server scenarios) against the MCP server. The scenarios this server
# must pass are required; every other scenario is run too and its outcome printed, with the reason
# when it does not apply to this server (it exercises the suite's own test tools, resources,
# prompts, logging or elicitation, which this server does not offer).
#
# Then the suite's next release (0.2.0-alpha, which tests MCP 2026-07-28) the same way: its
# 2026-07-28 server scenarios, where a scenario passes when each check it fails is one that needs
# something this server does not have (named below, with the reason), and, given the OAuth
# server's URL in demo mode, its authorization-server scenarios with a public client registered
# for the run (demo mode approves the authorization request that curl follows).
#
# usage: clients/conformance/run.sh http://localhost:5001/mcp/v1 [http://127.0.0.1:5000]
set -uo pipefail
cd "$(dirname "$0")"
url=${1:-http://localhost:5001/mcp/v1}
oauth=${2:-}
[ -x node_modules/.bin/node ] || npm ci --no-audit --no-fund --silent
node=node_modules/.bin/node   # the suite needs Node 22, installed from npm
suite=node_modules/@modelcontextprotocol/conformance/dist/index.js

required="server-initialize ping tools-list server-sse-multiple-streams dns-rebinding-protection"
reason() {
  case $1 in
    logging-set-level) echo "the server does not declare the logging capability";;
    completion-complete) echo "the server offers no prompts or resource templates to complete";;
    tools-call-*|json-schema-2020-12) echo "calls the suite's own test tool, which this server does not have (its six tools are its own)";;
    elicitation-*) echo "the server does not ask the client for input (no elicitation)";;
    resources-*) echo "the server offers no resources";;
    prompts-*) echo "the server offers no prompts";;
    http-custom-header-server-validation) echo "no tool here declares x-mcp-header parameters";;
    input-required-result-*) echo "calls the suite's own test tools that ask the client for input (elicitation, sampling, roots)";;
    *) echo "";;
  esac
}

status=0; passed=0; failed=0
# Prints one scenario's outcome and counts it: report LABEL REQUIRED(0/1) OK(0/1) SUMMARY OUTPUT [DETAIL].
report() {
  local label=$1 required=$2 ok=$3 summary=$4 out=$5 detail=${6:-}
  if [ "$required" = 1 ]; then
    if [ "$ok" = 1 ]; then passed=$((passed + 1)); echo "ok   $label (required): $summary$detail"
    else failed=$((failed + 1)); status=1; echo "FAIL $label (required): $summary$detail"; echo "$out" | grep -E 'FAILURE|ERROR' | head -5; fi
  elif [ "$ok" = 1 ]; then
    echo "ok   $label: $summary$detail"
  else
    echo "n/a  $label: $(reason "${label#next }") ($summary)"
  fi
}
all=$("$node" "$suite" list --server 2>/dev/null | sed -n 's/^  - \([a-z0-9-]*\).*/\1/p')
for scenario in $all; do
  out=$("$node" "$suite" server --url "$url" --scenario "$scenario" 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
  summary=$(echo "$out" | grep -E '^Passed:' | tail -1)
  if echo "$summary" | grep -qE ' 0 failed'; then ok=1; else ok=0; fi
  if [[ " $required " == *" $scenario "* ]]; then req=1; else req=0; fi
  report "$scenario" $req $ok "$summary" "$out"
done

# The next release, on MCP 2026-07-28.
next=node_modules/conformance-next/dist/index.js
required_next="server-stateless tools-list server-sse-multiple-streams sep-2164-resource-not-found dns-rebinding-protection caching http-header-validation input-required-result-unsupported-methods"
untestable() {
  case $1 in
    sep-2575-server-rejects-undeclared-capability|sep-2575-missing-capability-http-400)
      echo "needs the suite's test_missing_capability tool: no tool here needs a client capability";;
    sep-2575-http-server-no-independent-requests-on-stream)
      echo "needs the suite's test_streaming_elicitation tool: no tool here asks the client for input";;
    sep-2575-server-no-log-without-loglevel)
      echo "needs the suite's test_logging_tool: the server sends no log messages";;
    sep-2243-server-accepts-whitespace-header-value)
      echo "calls the first tool listed, create_data, without a token and gets the 401 it must (with a token a padded Mcp-Name is accepted: tests/e2e streamable)";;
    sep-2549-prompts-list-caching-hints|sep-2549-resources-list-caching-hints|sep-2549-resources-templates-list-caching-hints)
      echo "the server offers no prompts or resources";;
    *) echo "";;
  esac
}
all=$("$node" "$next" list --server --spec-version 2026-07-28 2>/dev/null | sed -n 's/^  - \([a-z0-9-]*\).*/\1/p')
for scenario in $all; do
  out=$("$node" "$next" server --url "$url" --scenario "$scenario" 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
  summary=$(echo "$out" | grep -E '^Passed:' | tail -1)
  unexplained=""; explained=""
  for check in $(echo "$out" | sed -n 's/.*\[\([a-z0-9-]*\) *\] FAILURE.*/\1/p' | sort -u); do
    why=$(untestable "$check")
    if [ -n "$why" ]; then explained="$explained; $check: $why"; else unexplained="$unexplained $check"; fi
  done
  if [ -n "$summary" ] && [ -z "$unexplained" ]; then ok=1; detail=$explained; else ok=0; detail="; failed:$unexplained"; fi
  if [[ " $required_next " == *" $scenario "* ]]; then req=1; else req=0; fi
  report "next $scenario" $req $ok "$summary" "$out" "$detail"
done

# The authorization server, with a public client of its own (demo mode approves at once).
if [ -n "$oauth" ]; then
  port=${CONFORMANCE_CALLBACK_PORT:-39871}
  client=$(curl -sf -X POST "$oauth/oauth/register" -H 'content-type: application/json' \
    -d "{\"client_name\":\"conformance\",\"redirect_uris\":[\"http://127.0.0.1:$port/callback\"],\"token_endpoint_auth_method\":\"none\",\"application_type\":\"native\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
  log=$(mktemp)
  timeout 120 "$node" "$next" authorization --url "$oauth" --client-id "$client" --resource "$url" -p "$port" >"$log" 2>&1 &
  suite_pid=$!
  for _ in $(seq 1 100); do grep -q "$oauth/oauth/authorize?" "$log" && break; sleep 0.2; done
  authorize=$(grep -o "$oauth/oauth/authorize?[^ ]*" "$log" | head -1)
  callback=$(curl -s -o /dev/null -w '%{redirect_url}' "$authorize")
  [ -n "$callback" ] && curl -s -o /dev/null "$callback"
  wait $suite_pid
  out=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
  for scenario in authorization-server-metadata-endpoint authorization-code-grant; do
    line=$(echo "$out" | grep -E "^. $scenario:" | tail -1)
    if echo "$line" | grep -qE '^✓'; then passed=$((passed + 1)); echo "ok   next $scenario (required):${line#*:}"
    else failed=$((failed + 1)); status=1; echo "FAIL next $scenario (required): ${line:-no result}"; echo "$out" | tail -n 20; fi
  done
fi
echo "MCP conformance, required scenarios: $passed passed, $failed failed"
exit $status
