"""Enterprise-Managed Authorization with the official MCP Python SDK's client side of it
(`mcp.client.auth.extensions.identity_assertion.IdentityAssertionOAuthProvider`).

This script plays the company's identity provider too: `setup DIR` makes its signing key, the
TRUSTED_IDENTITY_PROVIDERS_FILE that trusts it (its public key inline) and a CLIENTS_FILE with the
client it may issue grants to; start the servers with those two files, then `run DIR MCP_URL
ISSUER` lets the SDK exchange an ID-JAG for an access token (RFC 7523 jwt-bearer) and call every
tool over Streamable HTTP.

usage: python enterprise.py setup DIR
       python enterprise.py run DIR MCP_URL ISSUER
"""

import asyncio
import hashlib
import json
import secrets
import sys
import time
from pathlib import Path

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import ClientSession
from mcp.client.auth import TokenStorage
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

IDP_ISSUER = "https://idp.enterprise.test"
CLIENT_ID = "enterprise-python"
KID = "idp-key-1"
passes = 0
failures = 0


def check(what: str, ok: bool, detail: str = "") -> None:
    global passes, failures
    if ok:
        passes += 1
    else:
        failures += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok or not detail else ': ' + detail}", flush=True)


def b64(n: int, length: int) -> str:
    import base64

    return base64.urlsafe_b64encode(n.to_bytes(length, "big")).rstrip(b"=").decode()


def setup(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    (directory / "idp-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "kid": KID, "alg": "ES256", "use": "sig",
           "x": b64(numbers.x, 32), "y": b64(numbers.y, 32)}
    (directory / "idps.json").write_text(json.dumps(
        [{"issuer": IDP_ISSUER, "jwks": {"keys": [jwk]}, "client_ids": [CLIENT_ID], "subject_claim": "sub"}]))
    secret = secrets.token_urlsafe(32)
    (directory / "client-secret").write_text(secret)
    (directory / "clients.json").write_text(json.dumps([{
        "client_id": CLIENT_ID, "client_name": "Python SDK enterprise check",
        "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "token_endpoint_auth_method": "client_secret_post",
        "client_secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
    }]))


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


async def run(directory: Path, mcp_url: str, issuer: str) -> None:
    key = (directory / "idp-key.pem").read_bytes()
    issued: list[str] = []

    async def issue_id_jag(audience: str, resource: str) -> str:
        # The identity provider's side of the token exchange: an ID-JAG for this client and server.
        now = int(time.time())
        grant = jwt.encode(
            {"iss": IDP_ISSUER, "sub": "dana", "aud": audience, "client_id": CLIENT_ID,
             "resource": resource, "scope": "read write", "iat": now, "exp": now + 300,
             "jti": secrets.token_hex(16)},
            key, algorithm="ES256", headers={"typ": "oauth-id-jag+jwt", "kid": KID},
        )
        issued.append(grant)
        return grant

    storage = MemoryStorage()
    provider = IdentityAssertionOAuthProvider(
        server_url=mcp_url, storage=storage, client_id=CLIENT_ID,
        client_secret=(directory / "client-secret").read_text().strip(),
        issuer=issuer, assertion_provider=issue_id_jag,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with streamable_http_client(mcp_url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                profile = await session.call_tool("get_user_profile", {})
                check("an ID-JAG was exchanged for an access token", bool(issued) and storage.tokens is not None)
                check("no refresh token came with it", storage.tokens is not None and not storage.tokens.refresh_token)
                check("get_user_profile is the grant's user", (profile.structured_content or {}).get("sub") == "dana",
                      str(profile))
                created = await session.call_tool("create_data", {"name": "enterprise", "value": 1})
                item = created.structured_content or {}
                check("create_data", item.get("value") == 1, str(created))
                updated = await session.call_tool("update_data", {"item_id": item.get("id"), "value": 2})
                check("update_data", (updated.structured_content or {}).get("value") == 2, str(updated))
                listed = await session.call_tool("get_data", {})
                check("get_data", any(i["id"] == item.get("id") for i in (listed.structured_content or {}).get("items", [])))
                deleted = await session.call_tool("delete_data", {"item_id": item.get("id")})
                check("delete_data", (deleted.structured_content or {}).get("item_id") == item.get("id"), str(deleted))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "setup":
        setup(Path(sys.argv[2]))
        sys.exit(0)
    if len(sys.argv) < 5 or sys.argv[1] != "run":
        print(__doc__)
        sys.exit(2)
    try:
        asyncio.run(run(Path(sys.argv[2]), sys.argv[3], sys.argv[4]))
    except Exception as e:  # noqa: BLE001
        failures += 1
        print(f"FAIL the flow stopped: {e!r}", flush=True)
        import traceback

        traceback.print_exc()
    print(f"Python SDK client (enterprise-managed authorization): {passes} passed, {failures} failed")
    sys.exit(0 if failures == 0 else 1)
