// The official MCP TypeScript SDK as a peer in the benchmark: its stateless Streamable HTTP
// pattern (a server and a transport per request, no session), its requireBearerAuth middleware
// with a jose RS256 verifier of the same tokens (issuer, audience, typ at+jwt, the JWKS fetched
// and cached by jose), and one tool doing get_data's work (the caller's items, by subject, with
// the read scope). PEER_ITEMS, a JSON object of subject to items, gives it the items the
// benchmark made on our server, so that both answer with the same data.
//
// usage: PEER_ITEMS='{"sub": [...]}' node server.mjs PORT ISSUER JWKS_URL AUDIENCE
import express from "express";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";

const [port, issuer, jwksUrl, audience] = process.argv.slice(2);
const jwks = createRemoteJWKSet(new URL(jwksUrl));
const items = new Map(Object.entries(JSON.parse(process.env.PEER_ITEMS ?? "{}")));

const verifier = {
  async verifyAccessToken(token) {
    const { payload } = await jwtVerify(token, jwks, { issuer, audience, algorithms: ["RS256"], typ: "at+jwt" });
    return {
      token,
      clientId: String(payload.client_id ?? ""),
      scopes: String(payload.scope ?? "").split(" ").filter(Boolean),
      expiresAt: payload.exp,
      extra: { sub: payload.sub },
    };
  },
};

const app = express();
app.use(express.json());
app.post("/mcp", requireBearerAuth({ verifier }), async (req, res) => {
  const server = new McpServer({ name: "ts-sdk-peer", version: "1.0.0" });
  server.registerTool("get_data", { description: "The caller's data items" }, async (extra) => {
    const auth = extra.authInfo;
    if (!auth?.scopes.includes("read")) {
      return { isError: true, content: [{ type: "text", text: "this operation needs the read scope" }] };
    }
    const list = items.get(auth.extra.sub) ?? [];
    const result = { items: list, count: list.length };
    return { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result };
  });
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
app.listen(Number(port), "127.0.0.1");
