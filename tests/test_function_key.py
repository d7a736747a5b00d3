"""One identity per key (AUTH_MODE=key): the relay's caller is exactly the key the Functions
host validated, the `x-functions-key` header when present, else the first `code` parameter.
A request carrying two different keys is 400 `ambiguous_key`, so no repeated parameter can
pass the host with the real key and give the relay a fresh owner (and a fresh budget). The
local host (LOCAL_FUNCTION_KEY) validates the same way as Azure's host."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from responses_relay.access.auth import function_key
from responses_relay.access.owner import Owners
from responses_relay.errors import HttpError
from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .conftest import OWNER_SECRET, RelayServer, serve
from .faulty_upstream import FaultyUpstream
from .sse_client import Received, read_sse

KEY = "the-real-function-key"
OWNERS = Owners(OWNER_SECRET.encode())


async def ask(server: RelayServer, query: str = "", headers: dict[str, str] | None = None) -> Received:
    return await read_sse(
        server.client,
        "POST",
        "/api/chat" + query,
        content='{"input": "滋賀"}'.encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )


def owners(upstream: FaultyUpstream) -> list[str]:
    return [record.request["metadata"]["owner"] for record in upstream.records if record.path.endswith("/responses")]


AMBIGUOUS = {
    "the real key first, then another code": ("?code=" + KEY + "&code=anything", {}),
    "another code first, then the real key": ("?code=anything&code=" + KEY, {}),
    "the real key in the header, another code": ("?code=anything", {"x-functions-key": KEY}),
    "an empty code after the real key": ("?code=" + KEY + "&code=", {}),
    "an upper-case Code first (the host reads names in any case)": ("?Code=anything&code=" + KEY, {}),
    "an empty header (the host then reads no code)": ("?code=" + KEY, {"x-functions-key": ""}),
}


async def test_behind_azures_host_two_keys_are_ambiguous_and_one_key_is_one_owner(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    # No LOCAL_FUNCTION_KEY: the relay alone decides, as behind Azure's host, which let the first code in.
    async for server in serve(ChatService(make_settings(OWNER_HASH_SECRET=OWNER_SECRET))):
        refused = {case: await ask(server, query, headers) for case, (query, headers) in AMBIGUOUS.items()}
        reached = list(upstream.records)
        accepted = [
            await ask(server, "?code=" + KEY),
            await ask(server, headers={"x-functions-key": KEY}),
            await ask(server, "?code=" + KEY, {"x-functions-key": KEY}),
            await ask(server, "?code=" + KEY + "&code=" + KEY),
            await ask(server, "?CODE=" + KEY),
        ]
    assert reached == []
    for case, received in refused.items():
        assert (received.status, received.json["error"]["code"]) == (400, "ambiguous_key"), case
        assert KEY not in received.raw.decode()
    assert [received.status for received in accepted] == [200] * 5
    assert owners(upstream) == [OWNERS.of("key:" + KEY)] * 5


async def test_the_local_host_checks_the_key_as_azure_does_and_refuses_two(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    async for server in serve(ChatService(make_settings(OWNER_HASH_SECRET=OWNER_SECRET)), function_key=KEY):
        refused = {case: await ask(server, query, headers) for case, (query, headers) in AMBIGUOUS.items()}
        wrong_header = await ask(server, "?code=" + KEY, {"x-functions-key": "anything"})
        reached = list(upstream.records)
        accepted = [
            await ask(server, "?code=" + KEY),
            await ask(server, "?code=" + KEY + "&code=" + KEY),
            await ask(server, "?Code=" + KEY),
        ]
    assert reached == []
    for case, received in refused.items():
        assert (received.status, received.json["error"]["code"]) == (400, "ambiguous_key"), case
    assert (wrong_header.status, wrong_header.json["error"]["code"]) == (400, "ambiguous_key")
    assert [received.status for received in accepted] == [200] * 3
    assert owners(upstream) == [OWNERS.of("key:" + KEY)] * 3


def request(query: list[tuple[str, str]], header: str | None) -> Request:
    headers = [] if header is None else [(b"x-functions-key", header.encode())]
    scope = {"type": "http", "method": "POST", "path": "/api/chat", "query_string": urlencode(query).encode()}
    return Request({**scope, "headers": headers})


keys = st.sampled_from([KEY, "other", ""])
parameters = st.lists(st.tuples(st.sampled_from(["code", "Code", "CODE", "input", "codes"]), keys), max_size=5)


@given(query=parameters, header=st.none() | keys)
def test_a_request_names_at_most_one_key_and_it_is_the_one_the_host_checks(
    query: list[tuple[str, str]], header: str | None
) -> None:
    codes = [value for name, value in query if name.lower() == "code"]
    carried = ([] if header is None else [header]) + codes
    host_checks = header if header is not None else (codes[0] if codes else None)
    if len(set(carried)) > 1:
        with pytest.raises(HttpError) as refused:
            function_key(request(query, header))
        assert (refused.value.status, refused.value.code) == (400, "ambiguous_key")
    else:
        named = function_key(request(query, header))
        assert named == host_checks
        assert set(carried) <= {named}
