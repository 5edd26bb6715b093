// The sign-in and consent pages in a real browser (headless Chromium): one run approves and lands
// on the redirect URI with a code, another denies and lands with error=access_denied.
//
// usage: node signin.mjs OAUTH_URL USERNAME PASSWORD
import { createHash, randomBytes } from "node:crypto";
import { authorizeInBrowser } from "./browser.mjs";

const [oauth = "http://127.0.0.1:5000", username = "alice", password = ""] = process.argv.slice(2);
let passes = 0;
let failures = 0;
function check(what, ok, detail = "") {
  if (ok) passes++;
  else failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok || !detail ? "" : `: ${detail}`}`);
}

async function main() {
  const redirect = "http://127.0.0.1:8977/callback";
  const reg = await (await fetch(`${oauth}/oauth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_name: "Browser check", redirect_uris: [redirect], token_endpoint_auth_method: "none" }),
  })).json();
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const url = (state) => `${oauth}/oauth/authorize?` + new URLSearchParams({
    response_type: "code", client_id: reg.client_id, redirect_uri: redirect, scope: "read write",
    state, code_challenge: challenge, code_challenge_method: "S256",
  });

  const denied = await authorizeInBrowser(url("deny-1"), { username, password, decision: "deny" });
  check("deny lands on the redirect URI with error=access_denied", denied.searchParams.get("error") === "access_denied", denied.href);
  check("deny keeps the state", denied.searchParams.get("state") === "deny-1");

  const approved = await authorizeInBrowser(url("approve-1"), { username, password, decision: "approve", screenshot: process.env.SCREENSHOT });
  const code = approved.searchParams.get("code");
  check("approve lands on the redirect URI with a code", Boolean(code), approved.href);
  check("approve keeps the state and adds iss", approved.searchParams.get("state") === "approve-1" && approved.searchParams.get("iss") === oauth);
  const tokens = await (await fetch(`${oauth}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: redirect, code_verifier: verifier, client_id: reg.client_id }),
  })).json();
  const claims = JSON.parse(Buffer.from(tokens.access_token.split(".")[1], "base64url"));
  check("the code is exchanged for the signed-in user's token", claims.sub === username, JSON.stringify(claims));
}

main()
  .catch((e) => {
    failures++;
    console.log(`FAIL the browser run stopped: ${e?.stack ?? e}`);
  })
  .finally(() => {
    console.log(`Browser sign-in and consent: ${passes} passed, ${failures} failed`);
    process.exit(failures === 0 ? 0 : 1);
  });
