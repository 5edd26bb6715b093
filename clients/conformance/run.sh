#!/usr/bin/env bash
# The MCP conformance suite (server scenarios) against the MCP server. The scenarios this server
# must pass are required; every other scenario is run too and its outcome printed, with the reason
# when it does not apply to this server (it exercises the suite's own test tools, resources,
# prompts, logging or elicitation, which this server does not offer).
#
# usage: clients/conformance/run.sh http://localhost:5001/mcp/v1
set -uo pipefail
cd "$(dirname "$0")"
url=${1:-http://localhost:5001/mcp/v1}
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
    *) echo "";;
  esac
}

status=0; passed=0; failed=0
all=$("$node" "$suite" list --server 2>/dev/null | sed -n 's/^  - \([a-z0-9-]*\).*/\1/p')
for scenario in $all; do
  out=$("$node" "$suite" server --url "$url" --scenario "$scenario" 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
  summary=$(echo "$out" | grep -E '^Passed:' | tail -1)
  if echo "$summary" | grep -qE ' 0 failed'; then ok=1; else ok=0; fi
  if [[ " $required " == *" $scenario "* ]]; then
    if [ $ok = 1 ]; then passed=$((passed + 1)); echo "ok   $scenario (required): $summary"
    else failed=$((failed + 1)); status=1; echo "FAIL $scenario (required): $summary"; echo "$out" | grep -E 'FAILURE|ERROR' | head -5; fi
  elif [ $ok = 1 ]; then
    echo "ok   $scenario: $summary"
  else
    echo "n/a  $scenario: $(reason "$scenario") ($summary)"
  fi
done
echo "MCP conformance, required scenarios: $passed passed, $failed failed"
exit $status
