"""The official MCP Python SDK client (`mcp` from PyPI) against the running servers.

Its streamable HTTP client with an OAuthClientProvider starts with no token, is challenged,
discovers the authorization server, registers, authorizes (the authorization URL is followed
headlessly: demo mode approves at once; with SIGNIN_USER set, headless Chromium fills the sign-in
and consent forms through ../ts/browser.mjs), and calls every tool.

usage: python flow.py [MCP_URL] [streamable|sse|sse-at-mcp-url]

`sse` speaks the 2024-11-05 HTTP+SSE transport at MCP_URL/sse; `sse-at-mcp-url` speaks it at
MCP_URL itself, as the original demo's client configuration does.
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

MCP_URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5001/mcp/v1"
MODE = sys.argv[2] if len(sys.argv) > 2 else "streamable"
SERVER_URL = MCP_URL.rstrip("/") + "/sse" if MODE == "sse" else MCP_URL
REDIRECT = "http://127.0.0.1:8978/callback"
SIGNIN_USER = os.environ.get("SIGNIN_USER")
passes = 0
failures = 0


def check(what: str, ok: bool, detail: str = "") -> None:
    global passes, failures
    if ok:
        passes += 1
    else:
        failures += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok or not detail else ': ' + detail}", flush=True)


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class HeadlessBrowser:
    """Follows the authorization URL and keeps where the server sent the user agent back."""

    def __init__(self) -> None:
        self.back: dict[str, list[str]] = {}

    async def redirect(self, url: str) -> None:
        if SIGNIN_USER:
            script = Path(__file__).resolve().parent.parent / "ts" / "browser-cli.mjs"
            out = subprocess.run(
                ["node", str(script), url, SIGNIN_USER, os.environ.get("SIGNIN_PASSWORD", "")],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
            self.back = parse_qs(urlparse(out).query)
            return
        async with httpx2.AsyncClient(follow_redirects=False) as http:
            res = await http.get(url)
        location = res.headers.get("location")
        if not location:
            raise RuntimeError(f"authorization was not approved: HTTP {res.status_code} {res.text[:200]}")
        self.back = parse_qs(urlparse(location).query)

    async def callback(self) -> AuthorizationCodeResult:
        first = lambda k: (self.back.get(k) or [None])[0]  # noqa: E731
        return AuthorizationCodeResult(code=first("code"), state=first("state"), iss=first("iss"))


async def main() -> None:
    storage = MemoryStorage()
    browser = HeadlessBrowser()
    provider = OAuthClientProvider(
        server_url=SERVER_URL,
        client_metadata=OAuthClientMetadata(
            client_name=f"Python SDK check ({MODE})",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        if MODE == "streamable":
            transport = streamable_http_client(SERVER_URL, http_client=http)
        else:
            transport = sse_client(SERVER_URL, auth=provider, timeout=30)
        async with transport as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                check("initializes", bool(init.server_info.name), str(init))
                tools = await session.list_tools()
                check("lists the six tools", len(tools.tools) == 6, str([t.name for t in tools.tools]))
                profile = await session.call_tool("get_user_profile", {})
                check("authorized with no token to start: it registered", storage.client is not None)
                check("and holds an access token", storage.tokens is not None and bool(storage.tokens.access_token))
                expected = SIGNIN_USER or "demo_user"
                sub = (profile.structured_content or {}).get("sub")
                check("get_user_profile", sub == expected, str(profile))
                created = await session.call_tool("create_data", {"name": "Test", "value": 100})
                item = created.structured_content or {}
                check("create_data", item.get("value") == 100, str(created))
                updated = await session.call_tool("update_data", {"item_id": item.get("id"), "value": 7})
                check("update_data", (updated.structured_content or {}).get("value") == 7, str(updated))
                listed = await session.call_tool("get_data", {})
                ids = [i["id"] for i in (listed.structured_content or {}).get("items", [])]
                check("get_data", item.get("id") in ids, str(listed))
                deleted = await session.call_tool("delete_data", {"item_id": item.get("id")})
                check("delete_data", (deleted.structured_content or {}).get("item_id") == item.get("id"), str(deleted))
                auth = await session.call_tool("oauth_authenticate", {})
                if SIGNIN_USER:
                    check("oauth_authenticate outside demo mode says how to authorize", bool(auth.is_error), str(auth))
                else:
                    check("oauth_authenticate", (auth.structured_content or {}).get("authenticated") is True, str(auth))
                bad = await session.call_tool("create_data", {"name": "x", "value": 1, "extra": True})
                check("bad arguments give an isError result", bool(bad.is_error), str(bad))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001
        failures += 1
        print(f"FAIL the flow stopped: {e!r}", flush=True)
        import traceback

        traceback.print_exc()
    mode = ", sign-in" if SIGNIN_USER else ""
    print(f"Python SDK client ({MODE}{mode}): {passes} passed, {failures} failed")
    sys.exit(0 if failures == 0 else 1)
