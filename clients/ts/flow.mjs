// The official MCP TypeScript SDK client against the running servers: it starts with no token,
// is challenged, discovers the authorization server, registers, authorizes (the authorization
// URL is followed headlessly; demo mode approves at once), and calls every tool.
//
// usage: node flow.mjs [MCP_URL] [streamable|sse]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const mcpUrl = process.argv[2] ?? "http://127.0.0.1:5001/mcp/v1";
const mode = process.argv[3] ?? "streamable";
const REDIRECT = "http://127.0.0.1:8976/callback";

let failures = 0;
let passes = 0;
function check(what, ok, detail = "") {
  if (ok) passes++;
  else failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok || !detail ? "" : `: ${detail}`}`);
}

/** An in-memory OAuth client that follows the authorization redirect itself. */
class HeadlessProvider {
  constructor() {
    this.info = undefined;
    this.savedTokens = undefined;
    this.verifier = undefined;
    this.code = undefined;
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: `TypeScript SDK check (${mode})`,
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info) {
    this.info = info;
  }
  tokens() {
    return this.savedTokens;
  }
  saveTokens(tokens) {
    this.savedTokens = tokens;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
  async redirectToAuthorization(url) {
    const res = await fetch(url, { redirect: "manual" });
    const location = res.headers.get("location");
    if (!location) throw new Error(`authorization was not approved: HTTP ${res.status} ${await res.text()}`);
    const back = new URL(location);
    if (back.searchParams.get("error")) throw new Error(`authorization error: ${location}`);
    this.code = back.searchParams.get("code");
    this.iss = back.searchParams.get("iss");
  }
}

async function connect(provider) {
  const transport =
    mode === "sse"
      ? new SSEClientTransport(new URL(`${mcpUrl.replace(/\/$/, "")}/sse`), { authProvider: provider })
      : new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const client = new Client({ name: `ts-sdk-${mode}`, version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

async function main() {
  const provider = new HeadlessProvider();
  let { client, transport } = await connect(provider);
  check("connects and initializes without a token", true);

  const tools = await client.listTools();
  const names = tools.tools.map((t) => t.name).sort();
  check("lists the six tools", names.length === 6, names.join(","));

  let challenged = false;
  try {
    await client.callTool({ name: "get_data", arguments: {} });
  } catch (e) {
    challenged = e instanceof UnauthorizedError || /unauthorized/i.test(String(e));
  }
  check("a protected tool without a token is challenged (401)", challenged);
  check("the client registered itself dynamically", Boolean(provider.info?.client_id));
  check("the authorization URL was followed and gave a code", Boolean(provider.code));
  check("the authorization response carried iss (RFC 9207)", Boolean(provider.iss));

  await transport.finishAuth(provider.code);
  check("the code was exchanged for tokens", Boolean(provider.savedTokens?.access_token));
  check("a refresh token came with them", Boolean(provider.savedTokens?.refresh_token));

  if (mode === "sse") {
    // The SSE transport reconnects with the token.
    await client.close();
    ({ client, transport } = await connect(provider));
  }

  const profile = await client.callTool({ name: "get_user_profile", arguments: {} });
  check("get_user_profile", profile.structuredContent?.sub === "demo_user", JSON.stringify(profile));

  const created = await client.callTool({ name: "create_data", arguments: { name: "Test", value: 100 } });
  const id = created.structuredContent?.id;
  check("create_data", Boolean(id) && created.structuredContent.value === 100, JSON.stringify(created));

  const updated = await client.callTool({ name: "update_data", arguments: { item_id: id, name: "Renamed" } });
  check("update_data", updated.structuredContent?.name === "Renamed", JSON.stringify(updated));

  const listed = await client.callTool({ name: "get_data", arguments: {} });
  check("get_data", listed.structuredContent?.items?.some((i) => i.id === id), JSON.stringify(listed));

  const deleted = await client.callTool({ name: "delete_data", arguments: { item_id: id } });
  check("delete_data", deleted.structuredContent?.item_id === id, JSON.stringify(deleted));

  const auth = await client.callTool({ name: "oauth_authenticate", arguments: {} });
  check("oauth_authenticate", auth.structuredContent?.authenticated === true, JSON.stringify(auth));

  const bad = await client.callTool({ name: "create_data", arguments: { name: "x", value: 1, extra: true } });
  check("bad arguments give an isError result", bad.isError === true, JSON.stringify(bad));

  let unknown = false;
  try {
    await client.callTool({ name: "no_such_tool", arguments: {} });
  } catch (e) {
    unknown = /-32602|not found/i.test(String(e));
  }
  check("an unknown tool is a JSON-RPC error", unknown);

  await client.close();
}

main()
  .catch((e) => {
    failures++;
    console.log(`FAIL the flow stopped: ${e?.stack ?? e}`);
  })
  .finally(() => {
    console.log(`TypeScript SDK client (${mode}): ${passes} passed, ${failures} failed`);
    process.exit(failures === 0 ? 0 : 1);
  });
