"""A local OpenID Connect issuer for the tests, standing in for Microsoft Entra ID: an RSA
signing key (rotatable), its JWKS over HTTP, tokens minted on demand with any claim or
flaw, and, for the page's sign-in, the authorization code flow with PKCE (an authorization
endpoint that signs the user in at once and a token endpoint), served on 127.0.0.1 over
HTTP or, for MSAL (which takes only https authorities), HTTPS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

API_CLIENT_ID = "6f1c2f4e-3b1a-4c55-9d1e-2a7b8c9d0e1f"
TENANT_ID = "0b9d7a55-1c2e-4f3a-8b6c-5d4e3f2a1b0c"
SCOPE = f"api://{API_CLIENT_ID}/chat"
ISSUER_PATH = f"/{TENANT_ID}/v2.0"  # as Entra ID's: the issuer URL has a path, and its endpoints are under it
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*", "Access-Control-Allow-Methods": "*"}


@dataclass(frozen=True)
class User:
    oid: str
    name: str
    tid: str = TENANT_ID


ALICE = User("11111111-aaaa-4aaa-8aaa-111111111111", "Alice")
BOB = User("22222222-bbbb-4bbb-8bbb-222222222222", "Bob")


class SigningKey:
    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}


class OidcIssuer:
    """The issuer. `base_url` is its issuer URL (`iss`) once it serves; `keys_fetched` counts JWKS
    fetches (those it failed too). Its keys endpoint can fail (`keys_failures`: the next that many
    fetches fail as `keys_failure` says) or send a huge document (`keys_padding` bytes of white space before the
    keys, streamed: `keys_bytes_sent` says how much of it went out, `keys_stream_ended` when it stopped)."""

    def __init__(self) -> None:
        self.key = SigningKey()
        self.base_url = ""
        self.keys_fetched = 0
        self.keys_failures = 0
        self.keys_failure = "503"  # how they fail: "503", or "not a key set" (200 with an error in JSON)
        self.keys_padding = 0
        self.keys_bytes_sent = 0
        self.keys_stream_ended = asyncio.Event()
        self.authorized = 0  # sign-ins through the authorization endpoint
        self.signed_in: User = ALICE  # who the authorization endpoint signs in
        self._codes: dict[str, dict[str, str]] = {}
        routes = [
            Route("/.well-known/openid-configuration", self._configuration, methods=["GET"]),
            Route("/keys", self._keys, methods=["GET"]),
            Route("/authorize", self._authorize, methods=["GET"]),
            Route("/token", self._token, methods=["POST", "OPTIONS"]),
        ]
        self.app = Starlette(routes=[Mount(ISSUER_PATH, routes=routes)])

    @property
    def environ(self) -> dict[str, str]:
        """The relay's settings for tokens from this issuer."""
        return {
            "AUTH_MODE": "entra",
            "AUTH_CLIENT_ID": f"api://{API_CLIENT_ID}",
            "AUTH_ISSUER": self.base_url,
            "AUTH_JWKS_URL": self.keys_url,
        }

    @property
    def keys_url(self) -> str:
        return self.base_url + "/keys"

    def rotate(self) -> SigningKey:
        """A new signing key replaces the published one; the old one is returned, to sign tokens with."""
        old, self.key = self.key, SigningKey()
        return old

    def token(
        self,
        user: User = ALICE,
        *,
        key: SigningKey | None = None,
        lifetime: float = 3600,
        not_before: float = 0,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """An access token for the API, signed RS256 by `key` (the published one by default); `claims`
        override, and a claim given as None is left out."""
        key = key or self.key
        now = int(time.time())
        body = {
            "iss": self.base_url,
            "aud": f"api://{API_CLIENT_ID}",
            "sub": "sub-" + user.oid,
            "oid": user.oid,
            "tid": user.tid,
            "name": user.name,
            "scp": "chat",
            "iat": now,
            "nbf": int(now + not_before),
            "exp": int(now + lifetime),
            **claims,
        }
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, key.private, algorithm="RS256", headers={"kid": key.kid, **(headers or {})})

    async def _configuration(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.base_url,
                "authorization_endpoint": self.base_url + "/authorize",
                "token_endpoint": self.base_url + "/token",
                "end_session_endpoint": self.base_url + "/logout",
                "jwks_uri": self.keys_url,
                "response_types_supported": ["code"],
                "response_modes_supported": ["query", "fragment"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "offline_access"],
                "code_challenge_methods_supported": ["S256"],
            },
            headers=_CORS,
        )

    async def _keys(self, request: Request) -> Response:
        self.keys_fetched += 1
        if self.keys_failures > 0:
            self.keys_failures -= 1
            status = 503 if self.keys_failure == "503" else 200
            return JSONResponse({"error": "temporarily_unavailable"}, status, headers=_CORS)
        if self.keys_padding > 0:
            document = json.dumps({"keys": [self.key.jwk()]}).encode()
            return StreamingResponse(self._padded(document), media_type="application/json", headers=_CORS)
        return JSONResponse({"keys": [self.key.jwk()]}, headers=_CORS)

    async def _padded(self, document: bytes) -> AsyncIterator[bytes]:
        """`keys_padding` bytes of white space, then the document: valid JSON, as large as asked."""
        piece = b" " * 65536
        try:
            while self.keys_bytes_sent < self.keys_padding:
                yield piece
                self.keys_bytes_sent += len(piece)
                # uvicorn's send returns at once for a client that left: let the response see it leave.
                await asyncio.sleep(0)
            yield document
        finally:
            self.keys_stream_ended.set()

    async def _authorize(self, request: Request) -> Response:
        """Signs `signed_in` in without a form and sends the code back as the request asks."""
        query = request.query_params
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE (S256) is required"}, 400)
        self.authorized += 1
        code = secrets.token_urlsafe(24)
        self._codes[code] = {
            "challenge": query["code_challenge"],
            "redirect_uri": query["redirect_uri"],
            "client_id": query["client_id"],
            "nonce": query.get("nonce", ""),
            "scope": query.get("scope", ""),
        }
        answer = urlencode({"code": code, "state": query.get("state", "")})
        separator = "#" if query.get("response_mode", "fragment") == "fragment" else "?"
        return RedirectResponse(query["redirect_uri"] + separator + answer, status_code=302)

    async def _token(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_CORS)
        form = {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}
        grant = self._codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant is None or form.get("grant_type") != "authorization_code" or challenge != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "bad code or verifier"}, 400, _CORS)
        user = self.signed_in
        now = int(time.time())
        id_token = jwt.encode(
            {"iss": self.base_url, "aud": grant["client_id"], "sub": "sub-" + user.oid, "oid": user.oid,
             "tid": user.tid, "name": user.name, "preferred_username": f"{user.name.lower()}@example.com",
             "nonce": grant["nonce"], "iat": now, "nbf": now, "exp": now + 3600},
            self.key.private, algorithm="RS256", headers={"kid": self.key.kid},
        )  # fmt: skip
        return JSONResponse(
            {
                "token_type": "Bearer",
                "scope": SCOPE,
                "expires_in": 3600,
                "access_token": self.token(user),
                "id_token": id_token,
            },
            headers=_CORS,
        )


@asynccontextmanager
async def serving(issuer: OidcIssuer, *, tls: tuple[Path, Path] | None = None) -> AsyncIterator[OidcIssuer]:
    """Serve `issuer` on 127.0.0.1 (over HTTPS as localhost with `tls` = (cert, key)) until the block ends."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {}
    if tls is not None:
        options = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1]), "ssl_version": ssl.PROTOCOL_TLS_SERVER}
    config = uvicorn.Config(issuer.app, log_level="warning", lifespan="off", access_log=False, **options)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    origin = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    issuer.base_url = origin + ISSUER_PATH
    try:
        yield issuer
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
