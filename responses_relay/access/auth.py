"""Who is calling. In `key` mode the Functions host has checked the function key, and the
key itself names the caller (exactly the key the host checked: `function_key`); in `entra`
mode the function checks the bearer token itself: an RS256 signature by one of its
issuer's keys (JWKS over HTTP, cached), its issuer, its audience (the API's client id,
bare or as `api://<id>`), and its lifetime.

What comes out is the caller's identity, which only ever leaves as its keyed hash
(`owner.py`); neither it nor the token is logged or put in an error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx2
import jwt
import orjson
from starlette.requests import Request

from ..errors import AMBIGUOUS_KEY, AUTH_KEYS_UNAVAILABLE, INSUFFICIENT_SCOPE, UNAUTHENTICATED, HttpError
from ..settings import AccessSettings

KEY_HEADER = "x-functions-key"
KEY_PARAMETER = "code"  # the host reads query parameter names in any case
ALGORITHM = "RS256"
LEEWAY_SECONDS = 60  # clock skew allowed on exp and nbf
KEYS_REFRESH_SECONDS = 60.0  # an unknown key id refetches the key set at most this often
KEYS_RETRY_SECONDS = 2.0  # after a failed fetch, the next may come this soon
KEYS_FETCH_SECONDS = 10.0
_MAX_KEYS_BYTES = 256 * 1024

logger = logging.getLogger("responses_relay.auth")


class Authenticator:
    """The caller's identity for a request, or a 401 `unauthenticated`."""

    def __init__(self, access: AccessSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens = TokenValidator(access, clock=clock) if access.mode == "entra" else None

    async def identity(self, request: Request) -> str:
        if self._tokens is None:
            # The host let the request in with this key (or the route needs none, locally).
            return "key:" + (function_key(request) or "")
        return await self._tokens.identity(request.headers.get("authorization"))

    async def aclose(self) -> None:
        if self._tokens is not None:
            await self._tokens.aclose()


def function_key(request: Request) -> str | None:
    """The function key a request carries, read as the Functions host reads it: the
    `x-functions-key` header when present (even empty), else the first `code` parameter.
    A request carrying two different keys is 400 `ambiguous_key`: the host would check
    one of them and the relay would count the caller by another."""
    headers = request.headers.getlist(KEY_HEADER)
    codes = [value for name, value in request.query_params.multi_items() if name.lower() == KEY_PARAMETER]
    carried = headers + codes
    if len(set(carried)) > 1:
        raise HttpError(
            AMBIGUOUS_KEY,
            "The request carries two different function keys: send one, in x-functions-key or in one ?code=",
        )
    return carried[0] if carried else None


class TokenValidator:
    def __init__(self, access: AccessSettings, *, clock: Callable[[], float]) -> None:
        assert access.issuer is not None, "AUTH_MODE=entra has an issuer"
        assert access.jwks_url is not None, "and its key set's URL"
        self._issuer = access.issuer
        self._audiences = list(access.audiences)
        assert access.scope is not None, "and its scope"
        self._scope = access.scope
        self._app_role = access.app_role
        self._keys = KeySet(access.jwks_url, clock=clock)

    async def identity(self, authorization: str | None) -> str:
        """`tid/oid` of a valid token in `Authorization: Bearer <token>` (for issuers other than
        Entra ID, `iss/sub`)."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated("Sign in: an Authorization: Bearer <access token> header is required", None)
        claims = await self._claims(token.strip())
        self._check_permission(claims)
        tenant = claims.get("tid") or claims.get("iss")
        user = claims.get("oid") or claims.get("sub")
        if not isinstance(tenant, str) or not isinstance(user, str) or not user:
            raise _unauthenticated("The access token names no user (oid or sub)", "invalid_token")
        return f"{tenant}/{user}"

    def _check_permission(self, claims: dict[str, Any]) -> None:
        """A user's (delegated) token carries the API's scope in `scp`, space-separated; an
        app-only token has no `scp` and carries the app role in `roles`. Else 403."""
        scopes = claims.get("scp")
        if scopes is not None:
            if not isinstance(scopes, str) or self._scope not in scopes.split():
                raise _insufficient_scope(f"The access token lacks the API's scope ({self._scope})")
            return
        roles = claims.get("roles")
        if self._app_role is None or not isinstance(roles, list) or self._app_role not in roles:
            raise _insufficient_scope("The access token carries neither the API's scope nor an app role it accepts")

    async def _claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _unauthenticated("The access token is not a JWT", "invalid_token") from None
        if header.get("alg") != ALGORITHM:
            raise _unauthenticated(f"The access token must be signed with {ALGORITHM}", "invalid_token")
        key = await self._keys.key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audiences,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as error:
            logger.info("token refused: %s", type(error).__name__)
            raise _unauthenticated(
                _REASONS.get(type(error), "The access token is not valid"), "invalid_token"
            ) from None
        return claims

    async def aclose(self) -> None:
        await self._keys.aclose()


class KeySet:
    """The issuer's signing keys by key id, fetched on first use and again (at most once every
    KEYS_REFRESH_SECONDS after a fetch that succeeded) when a token names a key id it does not
    hold: keys rotate. A failed fetch keeps the keys held and answers 503 `auth_keys_unavailable`
    (never a 401: the token may well be valid) until KEYS_RETRY_SECONDS have passed; then the
    next request that needs the keys fetches them again.

    Our own rather than PyJWT's `PyJWKClient`: that one fetches with blocking urllib (a thread
    for each waiting request), reads the whole document before anything can check its size,
    does not back off after a failure, and reads `time.monotonic` itself."""

    def __init__(self, url: str, *, clock: Callable[[], float]) -> None:
        self._url = url
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # the last fetch that succeeded
        self._retry_at: float | None = None  # after a failed fetch: none before this
        self._lock = asyncio.Lock()
        self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(5.0), follow_redirects=False)

    async def key(self, kid: object) -> Any:
        if not isinstance(kid, str):
            raise _unauthenticated("The access token names no signing key (kid)", "invalid_token")
        if kid not in self._keys:
            async with self._lock:  # one fetch for all the requests that wait on it
                if kid not in self._keys and self._may_fetch():
                    await self._fetch()
        if kid not in self._keys:
            raise _unauthenticated("The access token is signed with a key its issuer does not list", "invalid_token")
        return self._keys[kid]

    def _may_fetch(self) -> bool:
        """Whether the keys may be fetched now; 503 while a failed fetch's backoff lasts."""
        now = self._clock()
        if self._retry_at is not None:
            if now < self._retry_at:
                raise _keys_unavailable(self._retry_at - now)
            return True
        return self._fetched_at is None or now - self._fetched_at >= KEYS_REFRESH_SECONDS

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(KEYS_FETCH_SECONDS):  # the whole fetch, however slowly it trickles
                document = orjson.loads(await self._read())
            keys = _signing_keys(document)
        except (httpx2.HTTPError, TimeoutError, ValueError) as error:  # orjson's JSONDecodeError is a ValueError
            logger.warning("the token issuer's keys could not be fetched: %s", type(error).__name__)
            self._retry_at = self._clock() + KEYS_RETRY_SECONDS
            raise _keys_unavailable(KEYS_RETRY_SECONDS) from None
        self._keys, self._fetched_at, self._retry_at = keys, self._clock(), None
        logger.info("token issuer's keys fetched: %d signing keys", len(keys))

    async def _read(self) -> bytes:
        """The keys document, read no further than _MAX_KEYS_BYTES: a larger one is refused
        while it arrives, not after it was read whole. Raw bytes, asked for unencoded: what is
        counted is what arrives (an encoded body then fails as JSON)."""
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        async with self._client.stream("GET", self._url, headers=headers) as response:
            response.raise_for_status()
            document = bytearray()
            async for chunk in response.aiter_raw():
                document += chunk
                if len(document) > _MAX_KEYS_BYTES:
                    raise ValueError("the key set is too large")
        return bytes(document)

    async def aclose(self) -> None:
        await self._client.aclose()


def _signing_keys(document: object) -> dict[str, Any]:
    """The RSA signature keys of a JWKS document, by key id; others are left out. Anything
    but a JWKS document (an error page in JSON) is a failed fetch, not a set of no keys."""
    listed = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(listed, list):
        raise ValueError("not a key set")
    keys: dict[str, Any] = {}
    for entry in listed:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        try:
            key = jwt.PyJWK(entry, algorithm=ALGORITHM).key
        except jwt.PyJWTError:
            continue
        if isinstance(kid, str):
            keys[kid] = key
    return keys


_REASONS: dict[type[Exception], str] = {
    jwt.ExpiredSignatureError: "The access token has expired",
    jwt.ImmatureSignatureError: "The access token is not valid yet",
    jwt.InvalidAudienceError: "The access token is for another audience",
    jwt.InvalidIssuerError: "The access token is from another issuer",
    jwt.InvalidSignatureError: "The access token's signature does not verify",
    jwt.MissingRequiredClaimError: "The access token lacks a required claim",
}


def _keys_unavailable(wait: float) -> HttpError:
    return HttpError(
        AUTH_KEYS_UNAVAILABLE,
        "The sign-in service's keys could not be fetched: try again shortly",
        retry_after=max(1, math.ceil(wait)),
    )


def _insufficient_scope(message: str) -> HttpError:
    return HttpError(INSUFFICIENT_SCOPE, message, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})


def _unauthenticated(message: str, error: str | None) -> HttpError:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HttpError(UNAUTHENTICATED, message, headers={"WWW-Authenticate": challenge})
