"""AUTH_MODE=entra: the function checks each caller's bearer token against a local OpenID
Connect issuer (an RSA key, its JWKS over HTTP on 127.0.0.1), standing in for Microsoft
Entra ID. Every flawed token is a 401 `unauthenticated` with `WWW-Authenticate: Bearer`,
and nothing reaches the upstream; a valid one streams."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

import function_app
from responses_relay.access.auth import KEYS_REFRESH_SECONDS, TokenValidator
from responses_relay.errors import HttpError
from responses_relay.local_host import http_functions
from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .conftest import OWNER_SECRET, RelayServer, serve
from .faulty_upstream import FaultyUpstream
from .oidc_issuer import ALICE, BOB, OidcIssuer, SigningKey, serving
from .sse_client import Received, chat


@pytest.fixture
async def issuer() -> AsyncIterator[OidcIssuer]:
    async with serving(OidcIssuer()) as running:
        yield running


@pytest.fixture
def entra(issuer: OidcIssuer, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**issuer.environ, OWNER_HASH_SECRET=OWNER_SECRET)


@pytest.fixture
async def relay(upstream: FaultyUpstream, entra: Settings) -> AsyncIterator[RelayServer]:
    async for server in serve(ChatService(entra)):
        yield server


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def unsigned(issuer: OidcIssuer) -> str:
    """A token with `alg: none`: claims that would pass, and no signature."""
    segments = [
        {"alg": "none", "typ": "JWT", "kid": issuer.key.kid},
        jwt.decode(issuer.token(), options={"verify_signature": False}),
    ]
    encoded = [base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode() for part in segments]
    return ".".join([*encoded, ""])


def hs256_with_the_public_key(issuer: OidcIssuer) -> str:
    """The classic key-confusion attack: HMAC-signed with the issuer's public key as the secret."""
    public = issuer.key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(issuer.token(), options={"verify_signature": False})
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.key.kid}).encode())
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode())
    signing_input = header.rstrip(b"=") + b"." + payload.rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(public, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def forged(issuer: OidcIssuer) -> str:
    """Signed by another key under the issuer's key id: the signature does not verify."""
    impostor = SigningKey()
    impostor.kid = issuer.key.kid
    return issuer.token(key=impostor)


FLAWED: dict[str, Callable[[OidcIssuer], dict[str, str]]] = {
    "no token": lambda issuer: {},
    "not bearer": lambda issuer: {"authorization": "Basic " + issuer.token()},
    "not a JWT": lambda issuer: bearer("not.a.token"),
    "a bad signature": lambda issuer: bearer(forged(issuer)),
    "alg none": lambda issuer: bearer(unsigned(issuer)),
    "HS256 signed with the public key": lambda issuer: bearer(hs256_with_the_public_key(issuer)),
    "expired past the leeway": lambda issuer: bearer(issuer.token(lifetime=-90)),
    "not yet valid past the leeway": lambda issuer: bearer(issuer.token(not_before=90)),
    "wrong audience": lambda issuer: bearer(issuer.token(aud="api://another-api")),
    "wrong issuer": lambda issuer: bearer(issuer.token(iss="https://login.example.com/other/v2.0")),
    "no expiry": lambda issuer: bearer(issuer.token(exp=None)),
    "an unknown kid": lambda issuer: bearer(issuer.token(key=SigningKey())),
    "no user": lambda issuer: bearer(issuer.token(oid=None, sub=None)),
}


@pytest.mark.parametrize("flaw", FLAWED)
async def test_a_flawed_token_is_401_and_nothing_reaches_the_upstream(
    flaw: str, issuer: OidcIssuer, relay: RelayServer, upstream: FaultyUpstream
) -> None:
    headers = FLAWED[flaw](issuer)
    received = await chat(relay.client, {"input": "滋賀"}, headers=headers)
    assert received.status == 401
    assert received.headers["www-authenticate"].startswith("Bearer")
    assert received.json["error"]["code"] == "unauthenticated"
    assert upstream.records == []
    token = headers.get("authorization", "").partition(" ")[2]
    assert not token or token not in received.raw.decode()


async def test_a_valid_token_streams_and_the_leeway_is_a_minute(
    issuer: OidcIssuer, relay: RelayServer, upstream: FaultyUpstream
) -> None:
    for token in (issuer.token(), issuer.token(lifetime=-30), issuer.token(not_before=30)):
        received = await chat(relay.client, {"input": "滋賀"}, headers=bearer(token))
        assert received.status == 200
        assert received.payloads("response.completed")[0]["status"] == "completed"
    assert issuer.keys_fetched == 1  # cached


async def test_the_api_client_id_is_accepted_bare_or_as_an_api_uri(issuer: OidcIssuer, relay: RelayServer) -> None:
    bare = issuer.environ["AUTH_CLIENT_ID"].removeprefix("api://")
    received = await chat(relay.client, {"input": "滋賀"}, headers=bearer(issuer.token(aud=bare)))
    assert received.status == 200


SCOPES: dict[str, tuple[dict[str, Any], int]] = {
    "no scp and no roles (app-only)": ({"scp": None}, 403),
    "scp User.Read": ({"scp": "User.Read"}, 403),
    "scp chats": ({"scp": "chats"}, 403),
    "scp User.Read chat": ({"scp": "User.Read chat"}, 200),
    "app-only with a role, none accepted (AUTH_APP_ROLE unset)": ({"scp": None, "roles": ["Chat.Use"]}, 403),
}
APP_ROLES: dict[str, tuple[dict[str, Any], int]] = {
    "app-only with the role": ({"scp": None, "roles": ["Other", "Chat.Use"]}, 200),
    "app-only without it": ({"scp": None, "roles": ["Other"]}, 403),
    "app-only with no roles": ({"scp": None}, 403),
    "app-only with roles not a list": ({"scp": None, "roles": "Chat.Use"}, 403),
    "delegated with the role but not the scope": ({"scp": "User.Read", "roles": ["Chat.Use"]}, 403),
    "delegated with the scope": ({"scp": "chat"}, 200),
}


async def scoped(server: RelayServer, issuer: OidcIssuer, claims: dict[str, Any]) -> Received:
    return await chat(server.client, {"input": "滋賀"}, headers=bearer(issuer.token(**claims)))


def assert_scope_answer(received: Received, status: int) -> None:
    assert received.status == status
    if status == 403:
        assert received.json["error"]["code"] == "insufficient_scope"
        assert received.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'


@pytest.mark.parametrize("case", SCOPES)
async def test_a_token_needs_the_apis_scope(
    case: str, issuer: OidcIssuer, relay: RelayServer, upstream: FaultyUpstream
) -> None:
    claims, status = SCOPES[case]
    received = await scoped(relay, issuer, claims)
    assert_scope_answer(received, status)
    assert bool(upstream.records) == (status == 200)


@pytest.mark.parametrize("case", APP_ROLES)
async def test_an_app_only_token_needs_the_app_role_when_one_is_set(
    case: str, issuer: OidcIssuer, make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    claims, status = APP_ROLES[case]
    settings = make_settings(**issuer.environ, OWNER_HASH_SECRET=OWNER_SECRET, AUTH_APP_ROLE="Chat.Use")
    async for server in serve(ChatService(settings)):
        received = await scoped(server, issuer, claims)
    assert_scope_answer(received, status)
    assert bool(upstream.records) == (status == 200)


async def test_the_scope_is_a_setting(
    issuer: OidcIssuer, make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    settings = make_settings(**issuer.environ, OWNER_HASH_SECRET=OWNER_SECRET, AUTH_SCOPE="Tour.Ask")
    async for server in serve(ChatService(settings)):
        default = await scoped(server, issuer, {})  # scp: chat
        named = await scoped(server, issuer, {"scp": "openid Tour.Ask"})
    assert_scope_answer(default, 403)
    assert_scope_answer(named, 200)


async def test_resume_and_cancel_need_a_token_too(
    issuer: OidcIssuer, relay: RelayServer, upstream: FaultyUpstream
) -> None:
    resumed = await relay.client.get("/api/chat/resp_abc")
    cancelled = await relay.client.post("/api/chat/resp_abc/cancel")
    assert (resumed.status_code, cancelled.status_code) == (401, 401)
    assert resumed.json()["error"]["code"] == cancelled.json()["error"]["code"] == "unauthenticated"
    assert upstream.records == []


async def test_health_stays_anonymous_and_says_the_mode(relay: RelayServer) -> None:
    health = await relay.client.get("/api/health")
    assert health.status_code == 200
    assert health.json()["auth"] == "entra"


def test_routes_are_anonymous_to_the_host_in_entra_mode_and_keyed_otherwise(
    entra: Settings, make_settings: Callable[..., Settings]
) -> None:
    def levels(settings: Settings) -> dict[str, str]:
        return {
            function.name: function.auth_level
            for function in http_functions(function_app.create_app(ChatService(settings)))
        }

    callers = ("chat", "resume", "cancel", "conversations", "conversation", "feedback", "ai_sdk_chat",
               "ai_sdk_resume", "ag_ui_run", "ag_ui_resume")  # fmt: skip
    assert levels(entra) == {**dict.fromkeys(callers, "anonymous"), "health": "anonymous"}
    assert levels(make_settings()) == {**dict.fromkeys(callers, "function"), "health": "anonymous"}


async def test_an_unreachable_issuer_is_503_with_retry_after_not_401(
    make_settings: Callable[..., Settings], issuer: OidcIssuer, upstream: FaultyUpstream
) -> None:
    token = issuer.token()
    # The discard port: refused.
    environ = {**issuer.environ, "AUTH_JWKS_URL": "http://127.0.0.1:9/keys", "OWNER_HASH_SECRET": OWNER_SECRET}
    async for server in serve(ChatService(make_settings(**environ))):
        received = await chat(server.client, {"input": "滋賀"}, headers=bearer(token))
    assert received.status == 503
    assert received.json["error"]["code"] == "auth_keys_unavailable"
    assert 1 <= int(received.headers["retry-after"]) == received.json["error"]["retry_after"] <= 5
    assert "www-authenticate" not in received.headers  # not a sign-in problem
    assert upstream.records == []


async def test_a_keys_document_over_the_limit_is_refused_while_it_streams(
    issuer: OidcIssuer, relay: RelayServer, upstream: FaultyUpstream
) -> None:
    issuer.keys_padding = 64 * 1024 * 1024  # valid JSON: white space, then the keys
    received = await chat(relay.client, {"input": "滋賀"}, headers=bearer(issuer.token()))
    assert (received.status, received.json["error"]["code"]) == (503, "auth_keys_unavailable")
    await asyncio.wait_for(issuer.keys_stream_ended.wait(), 10)
    # The relay hung up past its limit (256 KiB): the issuer sent a fraction of the document.
    assert issuer.keys_bytes_sent < issuer.keys_padding / 8
    assert upstream.records == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def identity(validator: TokenValidator, token: str) -> str | int:
    """The caller's identity, or the HTTP status it was refused with."""
    try:
        return await validator.identity(f"Bearer {token}")
    except HttpError as error:
        return error.status


async def refusal(validator: TokenValidator, token: str) -> HttpError:
    with pytest.raises(HttpError) as refused:
        await validator.identity(f"Bearer {token}")
    return refused.value


@pytest.mark.parametrize("failure", ["503", "not a key set"])
async def test_a_failed_fetch_of_the_keys_is_503_and_the_next_after_a_short_backoff_fetches_again(
    failure: str, issuer: OidcIssuer, entra: Settings
) -> None:
    clock = Clock()
    validator = TokenValidator(entra.access, clock=clock)
    token = issuer.token(ALICE)
    issuer.keys_failures, issuer.keys_failure = 1, failure
    try:
        refused = await refusal(validator, token)
        assert (refused.status, refused.code) == (503, "auth_keys_unavailable")
        assert refused.retry_after is not None
        assert 1 <= refused.retry_after <= 5
        assert refused.headers["Retry-After"] == str(refused.retry_after)
        assert issuer.keys_fetched == 1
        # Within the backoff: 503 again (never a 401 for a token that may be valid), and no fetch.
        clock.now += refused.retry_after - 0.5
        assert await identity(validator, token) == 503
        assert issuer.keys_fetched == 1
        # After it, the next request fetches the keys again, and the valid token passes.
        clock.now += 0.5
        assert await identity(validator, token) == f"{ALICE.tid}/{ALICE.oid}"
        assert issuer.keys_fetched == 2
        # A success starts the unknown-kid limit: a minute before the next fetch.
        assert await identity(validator, issuer.token(ALICE, key=SigningKey())) == 401
        assert issuer.keys_fetched == 2
    finally:
        await validator.aclose()


async def test_a_failed_refetch_keeps_the_keys_held_and_an_unknown_kid_is_503_until_the_next_fetch(
    issuer: OidcIssuer, entra: Settings
) -> None:
    clock = Clock()
    validator = TokenValidator(entra.access, clock=clock)
    try:
        assert await identity(validator, issuer.token(ALICE)) == f"{ALICE.tid}/{ALICE.oid}"
        old = issuer.rotate()
        clock.now += KEYS_REFRESH_SECONDS
        issuer.keys_failures = 1
        refused = await refusal(validator, issuer.token(BOB))  # the rotated key: its kid is new
        assert (refused.status, issuer.keys_fetched) == (503, 2)
        assert await identity(validator, issuer.token(ALICE, key=old)) == f"{ALICE.tid}/{ALICE.oid}"
        assert issuer.keys_fetched == 2  # a key held needs no fetch
        assert refused.retry_after is not None
        clock.now += refused.retry_after
        assert await identity(validator, issuer.token(BOB)) == f"{BOB.tid}/{BOB.oid}"
        assert issuer.keys_fetched == 3
    finally:
        await validator.aclose()


async def test_an_unknown_kid_refetches_the_keys_at_most_once_a_minute(issuer: OidcIssuer, entra: Settings) -> None:
    clock = Clock()
    validator = TokenValidator(entra.access, clock=clock)
    try:
        assert await identity(validator, issuer.token(ALICE)) == f"{ALICE.tid}/{ALICE.oid}"
        assert issuer.keys_fetched == 1
        old = issuer.rotate()
        clock.now += 10
        # The rotated key is unknown, and the keys were fetched less than a minute ago: 401, no fetch.
        assert await identity(validator, issuer.token(BOB)) == 401
        assert issuer.keys_fetched == 1
        clock.now += KEYS_REFRESH_SECONDS
        # A minute on, the unknown kid refetches once: the rotated key is in, the old one out.
        assert await identity(validator, issuer.token(BOB)) == f"{BOB.tid}/{BOB.oid}"
        assert issuer.keys_fetched == 2
        assert await identity(validator, issuer.token(ALICE, key=old)) == 401
        assert await identity(validator, issuer.token(ALICE, key=SigningKey())) == 401
        assert issuer.keys_fetched == 2
    finally:
        await validator.aclose()


async def test_concurrent_first_callers_fetch_the_keys_once(issuer: OidcIssuer, entra: Settings) -> None:
    validator = TokenValidator(entra.access, clock=Clock())
    try:
        users = await asyncio.gather(*(identity(validator, issuer.token(ALICE)) for _ in range(20)))
    finally:
        await validator.aclose()
    assert set(users) == {f"{ALICE.tid}/{ALICE.oid}"}
    assert issuer.keys_fetched == 1


async def test_concurrent_callers_during_a_failed_fetch_share_it_and_all_get_503(
    issuer: OidcIssuer, entra: Settings
) -> None:
    validator = TokenValidator(entra.access, clock=Clock())
    issuer.keys_failures = 1
    try:
        answers = await asyncio.gather(*(identity(validator, issuer.token(ALICE)) for _ in range(20)))
    finally:
        await validator.aclose()
    assert set(answers) == {503}
    assert issuer.keys_fetched == 1
