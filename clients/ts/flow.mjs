// The official MCP TypeScript SDK client against the running servers: it starts with no token,
// is challenged, discovers the authorization server, registers, authorizes (the authorization
// URL is followed headlessly; demo mode approves at once), and calls every tool.
//
// usage: node flow.mjs [MCP_URL] [streamable|sse|sse-at-mcp-url]
// `sse` speaks the 2024-11-05 HTTP+SSE transport at MCP_URL/sse; `sse-at-mcp-url` speaks it at
// MCP_URL itself, as the original demo's client configuration ({"url": ".../mcp/v1",
// "transport": "sse"}) does.
// With SIGNIN_USER and SIGNIN_PASSWORD set (DEMO_MODE=false), the authorization URL is opened in
// headless Chromium, which fills the sign-in and consent forms.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { authorizeInBrowser } from "./browser.mjs";

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
      // AUTH_METHOD=client_secret_post makes this a confidential client.
      token_endpoint_auth_method: process.env.AUTH_METHOD ?? "none",
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
    if (process.env.SIGNIN_USER) {
      const back = await authorizeInBrowser(url.href, { username: process.env.SIGNIN_USER, password: process.env.SIGNIN_PASSWORD ?? "" });
      this.code = back.searchParams.get("code");
      this.iss = back.searchParams.get("iss");
      return;
    }
    const res = await fetch(url, { redirect: "manual" });
    const location = res.headers.get("location");
    if (!location) throw new Error(`authorization was not approved: HTTP ${res.status} ${await res.text()}`);
    const back = new URL(location);
    if (back.searchParams.get("error")) throw new Error(`authorization error: ${location}`);
    this.code = back.searchParams.get("code");
    this.iss = back.searchParams.get("iss");
  }
}

function newTransport(provider) {
  if (mode === "sse") {
    return new SSEClientTransport(new URL(`${mcpUrl.replace(/\/$/, "")}/sse`), { authProvider: provider });
  }
  if (mode === "sse-at-mcp-url") {
    return new SSEClientTransport(new URL(mcpUrl), { authProvider: provider });
  }
  return new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
}

/** Connects on `transport`; the transport is kept by the caller, as a client app keeps it to finish authorization. */
async function connect(transport) {
  const client = new Client({ name: `ts-sdk-${mode}`, version: "1.0.0" });
  await client.connect(transport);
  return client;
}

async function main() {
  const provider = new HeadlessProvider();
  const signin = Boolean(process.env.SIGNIN_USER);
  let transport = newTransport(provider);
  let client;
  let challenged = false;
  try {
    client = await connect(transport);
    check("connects and initializes without a token", !signin, "auth should be required in sign-in mode");
  } catch (e) {
    // With MCP_AUTH_REQUIRED (the default outside demo mode) even initialize is challenged.
    if (!(e instanceof UnauthorizedError) && !/unauthorized/i.test(String(e))) throw e;
    challenged = true;
    check("initialize without a token is challenged (401)", signin);
  }

  if (!challenged) {
    const tools = await client.listTools();
    const names = tools.tools.map((t) => t.name).sort();
    check("lists the six tools", names.length === 6, names.join(","));
    try {
      await client.callTool({ name: "get_data", arguments: {} });
    } catch (e) {
      challenged = e instanceof UnauthorizedError || /unauthorized/i.test(String(e));
    }
    check("a protected tool without a token is challenged (401)", challenged);
  }
  check("the client registered itself dynamically", Boolean(provider.info?.client_id));
  if (process.env.AUTH_METHOD === "client_secret_post") {
    check("as a confidential client with a secret (client_secret_post)",
      Boolean(provider.info?.client_secret) && provider.info?.token_endpoint_auth_method === "client_secret_post");
  }
  check("the authorization URL was followed and gave a code", Boolean(provider.code));
  check("the authorization response carried iss (RFC 9207)", Boolean(provider.iss));

  await transport.finishAuth(provider.code);
  check("the code was exchanged for tokens", Boolean(provider.savedTokens?.access_token));
  check("a refresh token came with them", Boolean(provider.savedTokens?.refresh_token));

  if (mode.startsWith("sse") || !client) {
    // Connect again, now with the token (an SSE stream, or an initialize that was refused).
    await client?.close();
    transport = newTransport(provider);
    client = await connect(transport);
  }
  const expectedSub = process.env.SIGNIN_USER ?? "demo_user";

  const profile = await client.callTool({ name: "get_user_profile", arguments: {} });
  check("get_user_profile", profile.structuredContent?.sub === expectedSub, JSON.stringify(profile));

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
  if (signin) {
    check("oauth_authenticate outside demo mode says how to authorize", auth.isError === true, JSON.stringify(auth));
  } else {
    check("oauth_authenticate", auth.structuredContent?.authenticated === true, JSON.stringify(auth));
  }

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
    const extra = `${process.env.SIGNIN_USER ? ", sign-in" : ""}${process.env.AUTH_METHOD ? `, ${process.env.AUTH_METHOD}` : ""}`;
    console.log(`TypeScript SDK client (${mode}${extra}): ${passes} passed, ${failures} failed`);
    process.exit(failures === 0 ? 0 : 1);
  });
