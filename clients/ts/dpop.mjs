// DPoP end to end with a client library none of us wrote: panva's oauth4webapi (RFC 9449 client
// support). It discovers the authorization server, registers a public client, authorizes with
// PKCE (demo mode approves at once), redeems the code with a DPoP proof (a DPoP-bound token and a
// refresh token bound to the same key), calls every tool over Streamable HTTP with a fresh proof
// per request (the MCP DPoP profile's content_digest added through the library's modifyAssertion
// hook), refreshes with a proof, and checks that the token is refused as Bearer.
//
// usage: node dpop.mjs ISSUER MCP_URL
import * as oauth from "oauth4webapi";
import { createHash } from "node:crypto";

const issuer = new URL(process.argv[2] ?? "http://127.0.0.1:5000");
const mcpUrl = new URL(process.argv[3] ?? "http://127.0.0.1:5001/mcp/v1");
const REDIRECT = "http://127.0.0.1:8979/callback";

let passes = 0;
let failures = 0;
function check(what, ok, detail = "") {
  if (ok) passes++;
  else failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok || !detail ? "" : `: ${detail}`}`);
}

// The body the next proof is for: the MCP profile binds each proof to it (RFC 9530 digest).
let nextBody;
const insecure = { [oauth.allowInsecureRequests]: true };

async function main() {
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...insecure, algorithm: "oauth2" }));
  check("the metadata lists DPoP algorithms", as.dpop_signing_alg_values_supported?.includes("ES256"));
  const registered = await oauth.processDynamicClientRegistrationResponse(
    await oauth.dynamicClientRegistrationRequest(as, {
      client_name: "oauth4webapi DPoP check", redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"], token_endpoint_auth_method: "none",
      dpop_bound_access_tokens: true,
    }, insecure),
  );
  const client = { client_id: registered.client_id };
  const keyPair = await oauth.generateKeyPair("ES256");
  const dpop = oauth.DPoP(client, keyPair, {
    [oauth.modifyAssertion]: (_header, payload) => {
      if (nextBody !== undefined) {
        payload.content_digest = `sha-256=:${createHash("sha256").update(nextBody).digest("base64")}:`;
      }
    },
  });

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const authorize = new URL(as.authorization_endpoint);
  for (const [k, v] of Object.entries({
    response_type: "code", client_id: client.client_id, redirect_uri: REDIRECT, scope: "read write",
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
    state, resource: mcpUrl.href,
  })) authorize.searchParams.set(k, v);
  const approved = await fetch(authorize, { redirect: "manual" });
  const back = new URL(approved.headers.get("location"));
  const params = oauth.validateAuthResponse(as, client, back, state);

  // With DPOP_SERVER_NONCES the first answer is use_dpop_nonce: the library keeps the nonce and
  // the request is sent again, as its documentation shows.
  async function withNonce(request, process) {
    nextBody = undefined;
    try {
      return await process(await request());
    } catch (e) {
      if (!oauth.isDPoPNonceError(e)) throw e;
      return await process(await request());
    }
  }
  const tokens = await withNonce(
    () => oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, { ...insecure, DPoP: dpop }),
    (res) => oauth.processAuthorizationCodeResponse(as, client, res),
  );
  check("the code was redeemed for a DPoP-bound token", tokens.token_type?.toLowerCase() === "dpop", JSON.stringify(tokens));
  check("with a refresh token", Boolean(tokens.refresh_token));

  let session;
  let id = 0;
  async function rpc(method, params, accessToken = tokens.access_token) {
    const message = params === undefined && method.startsWith("notifications/")
      ? { jsonrpc: "2.0", method }
      : { jsonrpc: "2.0", id: ++id, method, params: params ?? {} };
    const body = JSON.stringify(message);
    const headers = new Headers({ "content-type": "application/json", accept: "application/json, text/event-stream" });
    if (session) {
      headers.set("mcp-session-id", session);
      headers.set("mcp-protocol-version", "2025-11-25");
    }
    nextBody = body;
    const res = await oauth.protectedResourceRequest(accessToken, "POST", mcpUrl, headers, body, { ...insecure, DPoP: dpop });
    nextBody = undefined;
    session ??= res.headers.get("mcp-session-id") ?? undefined;
    const text = await res.text();
    // A JSON body, or the SSE event that carries the answer; a notification's 202 has none.
    const data = text.startsWith("{") ? text : text.split("\n").find((l) => l.startsWith("data:") && l.includes("{"))?.slice(5);
    const json = data ? JSON.parse(data) : null;
    return { status: res.status, json };
  }

  const init = await rpc("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "oauth4webapi", version: "3" } });
  check("initialize with DPoP", init.status === 200 && Boolean(init.json?.result?.serverInfo), JSON.stringify(init));
  await rpc("notifications/initialized");
  const tools = await rpc("tools/list");
  check("tools/list", tools.json?.result?.tools?.length === 6, JSON.stringify(tools.json));
  const profile = await rpc("tools/call", { name: "get_user_profile", arguments: {} });
  check("get_user_profile", profile.json?.result?.structuredContent?.sub === "demo_user", JSON.stringify(profile.json));
  const created = await rpc("tools/call", { name: "create_data", arguments: { name: "dpop", value: 1 } });
  const itemId = created.json?.result?.structuredContent?.id;
  check("create_data", Boolean(itemId), JSON.stringify(created.json));
  const updated = await rpc("tools/call", { name: "update_data", arguments: { item_id: itemId, value: 2 } });
  check("update_data", updated.json?.result?.structuredContent?.value === 2, JSON.stringify(updated.json));
  const listed = await rpc("tools/call", { name: "get_data", arguments: {} });
  check("get_data", listed.json?.result?.structuredContent?.items?.some((i) => i.id === itemId));
  const deleted = await rpc("tools/call", { name: "delete_data", arguments: { item_id: itemId } });
  check("delete_data", deleted.json?.result?.structuredContent?.item_id === itemId, JSON.stringify(deleted.json));
  const auth = await rpc("tools/call", { name: "oauth_authenticate", arguments: {} });
  check("oauth_authenticate answers", Boolean(auth.json?.result), JSON.stringify(auth.json));

  const asBearer = await fetch(mcpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${tokens.access_token}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "ping" }),
  });
  check("the DPoP-bound token is refused as Bearer", asBearer.status === 401);

  const refreshed = await withNonce(
    () => oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token, { ...insecure, DPoP: dpop }),
    (res) => oauth.processRefreshTokenResponse(as, client, res),
  );
  check("refreshed with a proof of the same key", refreshed.token_type?.toLowerCase() === "dpop");
  session = undefined;
  const again = await rpc("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "oauth4webapi", version: "3" } }, refreshed.access_token);
  check("the refreshed token works", again.status === 200);
}

main()
  .catch((e) => {
    failures++;
    console.log(`FAIL the flow stopped: ${e?.stack ?? e}`);
  })
  .finally(() => {
    console.log(`oauth4webapi DPoP client: ${passes} passed, ${failures} failed`);
    process.exit(failures === 0 ? 0 : 1);
  });
