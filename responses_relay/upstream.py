"""The upstream: an AsyncOpenAI client for Azure OpenAI or any OpenAI-compatible URL.

`Upstream.open` sends `responses.create(stream=True)` and returns once the
upstream's response headers have arrived; `resume`, `retrieve` and `cancel` reach a
stored (background) response. Every failure up to that point becomes an `HttpError`
for the caller. Retries are short, bounded, and only happen here, before the first
byte has reached the caller.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit
from urllib.request import getproxies

import aiohttp
import httpx2
import openai
import orjson
from openai import AsyncOpenAI, AsyncStream, DefaultAioHttpClient, DefaultAsyncHttpxClient

from .chat_request import ChatRequest
from .errors import (
    CALLER_INPUT_CODES,
    RATE_LIMITED,
    RESPONSE_NOT_FOUND,
    UPSTREAM_BAD_RESPONSE,
    UPSTREAM_ERROR,
    UPSTREAM_FORBIDDEN,
    UPSTREAM_NOT_FOUND,
    UPSTREAM_REJECTED,
    UPSTREAM_TIMEOUT,
    UPSTREAM_UNAUTHORIZED,
    UPSTREAM_UNREACHABLE,
    ErrorCode,
    HttpError,
)
from .settings import Settings, SettingsError

if TYPE_CHECKING:  # azure.identity is imported only for keyless auth: it is slow to import
    from azure.core.credentials_async import AsyncTokenCredential

AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
SPILLOVER_HEADER = "x-ms-spillover-deployment"
SPILLED_OVER_PREFIX = "x-ms-spillover-from"
# What the start-up log calls each UPSTREAM_TRANSPORT.
TRANSPORT_NAMES = {
    "aiohttp": "aiohttp (the openai SDK's DefaultAioHttpClient)",
    "httpx": "httpx (httpx2's own)",
}
_RETRY_STATUSES = frozenset({500, 502, 503})
_MAX_RETRY_DELAY = 2.0

_Result = TypeVar("_Result")
# The error, and its message, for an answer that says the thing asked about is not there (a 404).
Absent = tuple[ErrorCode, str]

logger = logging.getLogger("responses_relay.upstream")
# httpx2 logs every request's URL at INFO: that is the upstream's address, which stays out of logs.
logging.getLogger("httpx2").setLevel(logging.WARNING)


class Upstream:
    """The model service. Auth: the API key when set, otherwise Microsoft Entra ID."""

    def __init__(
        self,
        settings: Settings,
        base_url: str,
        *,
        credential: AsyncTokenCredential | None = None,
        function_tools: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.settings = settings
        self._function_tools = list(function_tools)  # the definitions of the tools the relay runs
        self.base_url = base_url  # where the model service is (telemetry names it as the server)
        # What redact() removes from upstream messages: the address, with and without the path.
        self._addresses = [address for address in (base_url.rstrip("/"), httpx2.URL(base_url).host) if address]
        self._credential: AsyncTokenCredential | None = None
        api_key: str | Callable[[], Awaitable[str]]
        if settings.api_key is not None:
            api_key = settings.api_key
        elif settings.endpoint is None:
            api_key = "demo"  # the built-in demo upstream takes any key
        else:
            from azure.identity.aio import get_bearer_token_provider

            self._credential = credential or _default_credential(settings)
            api_key = get_bearer_token_provider(self._credential, AZURE_SCOPE)
        timeout = httpx2.Timeout(
            connect=settings.connect_timeout_seconds,
            read=settings.read_timeout_seconds,
            write=settings.connect_timeout_seconds,
            pool=settings.connect_timeout_seconds,
        )
        self.client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=0,  # retries are ours: bounded and only before the first byte
            timeout=timeout,
            http_client=http_client(settings, timeout),
        )

    async def open(
        self, request: ChatRequest, *, owner: str | None = None, answer: str | None = None
    ) -> httpx2.Response:
        """The upstream's streaming HTTP response, its headers received and status 2xx. `owner` and
        `answer` go in the response's metadata (the caller's keyed hash, and the answer it is a round of)."""
        body = json_body(self._parameters(request, owner, answer))
        headers = {"Content-Type": "application/json"}
        spillover = self.settings.spillover_deployment
        if spillover is not None:  # Azure OpenAI: where a provisioned deployment's overflow goes
            headers[SPILLOVER_HEADER] = spillover
        # `responses.create(stream=True)`, minus the SDK's per-request parameter transformation
        # and typed event parsing: the body is already plain JSON, and the stream is read raw.
        # With cast_to=httpx2.Response the SDK hands back the response itself, body unread.
        return await self._call(
            lambda: self.client.post(
                "/responses",
                cast_to=httpx2.Response,
                content=body,
                options={"headers": headers},
                stream=True,
                stream_cls=AsyncStream[Any],
            ),
            httpx2.Response,
            creates=self.settings.resumable,
        )

    def answered_by(self, response: httpx2.Response) -> str:
        """The deployment that answered: the spillover deployment when Azure OpenAI says the request
        spilled over to it (an `x-ms-spillover-from-...` response header), else the model's."""
        spillover = self.settings.spillover_deployment
        if spillover is not None and any(name.startswith(SPILLED_OVER_PREFIX) for name in response.headers):
            return spillover
        return self.settings.model

    async def resume(self, response_id: str, after: int | None) -> httpx2.Response:
        """A stored (background) response's stream, after sequence number `after` (None: from the start)."""
        query: dict[str, object] = {"stream": "true"}
        if after is not None:
            query["starting_after"] = after
        return await self._call(
            lambda: self.client.get(
                f"/responses/{response_id}",
                cast_to=httpx2.Response,
                options={"params": query},
                stream=True,
                stream_cls=AsyncStream[Any],
            ),
            httpx2.Response,
            stored=True,
        )

    async def retrieve(self, response_id: str) -> dict[str, Any]:
        """A stored response object: its `status`, `usage`, `incomplete_details`, `error`."""
        return await self._call(lambda: self.client.get(f"/responses/{response_id}", cast_to=object), dict, stored=True)

    async def cancel(self, response_id: str) -> dict[str, Any]:
        """Cancel a background response; the response object as it now stands."""
        path = f"/responses/{response_id}/cancel"
        return await self._call(lambda: self.client.post(path, cast_to=object), dict, stored=True)

    async def call_json(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | int] | None = None,
        absent: Mapping[int, Absent] | None = None,
        creates: bool = False,
    ) -> dict[str, Any] | None:
        """A JSON request of the API other than a response's (the Conversations API, a stored
        response's input items or its deletion): its answer's JSON object (None for a DELETE).
        `absent`: the error to raise for an answer's status, such as 404 for an unknown id."""
        if method == "DELETE":
            return await self._call(lambda: self.client.delete(path, cast_to=type(None)), type(None), absent=absent)
        params = dict(query or {})

        async def send() -> object:
            if method == "GET":
                return await self.client.get(path, cast_to=object, options={"params": params})
            return await self.client.post(path, cast_to=object, body=dict(body or {}), options={"params": params})

        return await self._call(send, dict, absent=absent, creates=creates)

    async def _call(
        self,
        send: Callable[[], Awaitable[object]],
        kind: type[_Result],
        *,
        stored: bool = False,
        creates: bool = False,
        absent: Mapping[int, Absent] | None = None,
    ) -> _Result:
        """One request with our retries; every failure as an `HttpError`. `stored`: a request
        about a stored response, whose 404 means that response, not the deployment. `creates`:
        it makes something (a background response, which goes on whoever hears the answer), so
        it is sent again only when it cannot have arrived (the connection was never made).
        `absent`: the error for each status that says the thing asked about is not there."""
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            try:
                result = await send()
            except (openai.APIConnectionError, aiohttp.ClientError) as error:
                cause = _transport_error(error)
                if isinstance(cause, (TimeoutError, httpx2.TimeoutException)):
                    logger.warning("upstream timed out before its response headers")
                    raise HttpError(UPSTREAM_TIMEOUT, "The model service did not answer in time") from None
                logger.warning("upstream unreachable (attempt %d): %s", attempt + 1, type(cause).__name__)
                never_sent = isinstance(cause, (httpx2.ConnectError, aiohttp.ClientConnectorError))
                if last or (creates and not never_sent):
                    raise HttpError(UPSTREAM_UNREACHABLE, "The model service could not be reached") from None
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            except openai.APIStatusError as error:
                delay = _retry_after(error.response.headers)
                retry = error.status_code in _RETRY_STATUSES and not last and not creates
                if retry and (delay is None or delay <= _MAX_RETRY_DELAY):
                    logger.warning("upstream answered %d (attempt %d); retrying", error.status_code, attempt + 1)
                    await asyncio.sleep(delay if delay is not None else 0.1 * (attempt + 1))
                    continue
                if stored and error.status_code == 404:
                    raise HttpError(RESPONSE_NOT_FOUND, "No stored response has that id") from None
                if absent is not None and error.status_code in absent:
                    raise HttpError(*absent[error.status_code]) from None
                raise self._status_error(error) from None
            if not isinstance(result, kind):
                raise HttpError(UPSTREAM_BAD_RESPONSE, "The model service sent an invalid answer")
            return result
        raise AssertionError("unreachable")

    def tool_definitions(self, client_tools: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        """The tools a request offers: web search, the relay's function tools, the caller's own
        (`client_tools`), MCP servers."""
        settings = self.settings
        web_search = [{"type": "web_search"}] if settings.web_search else []
        mcp = [server.definition() for server in settings.mcp_servers]
        return [*web_search, *self._function_tools, *client_tools, *mcp]

    def _parameters(self, request: ChatRequest, owner: str | None = None, answer: str | None = None) -> dict[str, Any]:
        settings = self.settings
        parameters: dict[str, Any] = {
            "model": settings.model,
            "instructions": settings.instructions,
            "input": request.upstream_input(),
            "max_output_tokens": settings.max_output_tokens,
            "stream": True,
        }
        if settings.temperature is not None:
            parameters["temperature"] = settings.temperature
        if settings.top_p is not None:
            parameters["top_p"] = settings.top_p
        reasoning = {"effort": settings.reasoning_effort, "summary": settings.reasoning_summary}
        reasoning = {key: value for key, value in reasoning.items() if value is not None}
        if reasoning:
            parameters["reasoning"] = reasoning
        tools = self.tool_definitions(request.client_tools)
        if tools:
            parameters["tools"] = tools
        if request.previous_response_id is not None:
            parameters["previous_response_id"] = request.previous_response_id
        if request.conversation_id is not None:  # the response's items join the conversation
            parameters["conversation"] = {"id": request.conversation_id}
        if owner is not None:  # the caller's keyed hash: resume, cancel and chaining check it
            parameters["metadata"] = {"owner": owner} if answer is None else {"owner": owner, "answer": answer}
        if settings.resumable:  # background mode: stored upstream, resumable from any instance
            parameters["background"] = True
            parameters["store"] = True
        return parameters

    def _status_error(self, error: openai.APIStatusError) -> HttpError:
        status, code = error.status_code, error.code or ""
        logger.warning("upstream refused the request: status %d, code %s", status, code[:64] or "-")
        if code in CALLER_INPUT_CODES and 400 <= status < 500:
            refused = self.redact(_message(error) or "The model service refused the input")
            return HttpError(CALLER_INPUT_CODES[code], refused)
        if status == 429:
            delay = _retry_after(error.response.headers)
            seconds = None if delay is None else max(1, math.ceil(delay))
            return HttpError(RATE_LIMITED, "The model service is busy; retry later", retry_after=seconds)
        if status in (408, 504):
            return HttpError(UPSTREAM_TIMEOUT, "The model service did not answer in time")
        known = {
            401: (UPSTREAM_UNAUTHORIZED, "The relay is not authorized by the model service"),
            403: (UPSTREAM_FORBIDDEN, "The relay is not allowed to use the model service"),
            404: (UPSTREAM_NOT_FOUND, "The model deployment was not found"),
        }
        if status in known:
            return HttpError(*known[status])
        if status >= 500:
            return HttpError(UPSTREAM_ERROR, f"The model service failed (HTTP {status})")
        return HttpError(UPSTREAM_REJECTED, f"The model service rejected the request (HTTP {status})")

    def redact(self, message: str) -> str:
        """An upstream message made safe for callers: no upstream address, bounded length."""
        for address in self._addresses:
            message = message.replace(address, "the model service")
        return message[:500]

    async def aclose(self) -> None:
        await self.client.close()
        if self._credential is not None:
            await self._credential.close()


def http_client(settings: Settings, timeout: httpx2.Timeout, *, verify: bool = True) -> httpx2.AsyncClient:
    """The SDK's httpx2 client on the transport UPSTREAM_TRANSPORT names, with idle
    connections expiring after UPSTREAM_KEEPALIVE_SECONDS. Either way httpx2 itself reads
    the proxy variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) and gives each proxy
    a transport of that kind; except in demo mode, whose upstream is on this machine.
    `verify=False` loads no certificate authorities: only for a client that sends nothing."""
    # The counts are the openai SDK's own defaults.
    limits = httpx2.Limits(
        max_connections=1000, max_keepalive_connections=100, keepalive_expiry=settings.keepalive_seconds
    )
    trust_env = settings.endpoint is not None
    options: dict[str, Any] = {"timeout": timeout, "limits": limits, "trust_env": trust_env, "verify": verify}
    if settings.transport == "httpx":
        return DefaultAsyncHttpxClient(**options)
    return DefaultAioHttpClient(**options)


def json_body(value: Any) -> bytes:
    """`value` as JSON in bytes of their own size. orjson's result keeps its working buffer
    (4 KiB or more), and the request, so its body, is held as long as its stream lasts."""
    return bytes(memoryview(orjson.dumps(value)))


def check_proxy_environment(settings: Settings) -> None:
    """Proxy variables the client cannot use stop start-up with one line, as a bad setting does,
    rather than failing every chat: the client is made here once, as the upstream makes it.
    aiohttp speaks to HTTP proxies only, and would take a SOCKS proxy's address for one."""
    try:
        # Certificates take tens of milliseconds to load, and the upstream's client loads them anyway.
        http_client(settings, httpx2.Timeout(settings.connect_timeout_seconds), verify=False)
    except (ValueError, ImportError) as error:  # an unknown proxy scheme; SOCKS without socksio
        raise SettingsError(f"HTTP_PROXY, HTTPS_PROXY or ALL_PROXY cannot be used: {error}") from None
    if settings.transport != "aiohttp" or settings.endpoint is None:
        return
    for scheme, proxy in getproxies().items():  # what httpx2 reads the proxy variables with
        if scheme in ("http", "https", "all") and urlsplit(proxy).scheme.startswith("socks"):
            message = "is a SOCKS proxy, which UPSTREAM_TRANSPORT=aiohttp cannot use: set UPSTREAM_TRANSPORT=httpx"
            raise SettingsError(f"{scheme.upper()}_PROXY {message}")


def _default_credential(settings: Settings) -> AsyncTokenCredential:
    from azure.identity.aio import DefaultAzureCredential

    # AZURE_CLIENT_ID selects a user-assigned managed identity; azure-core's default async
    # transport is aiohttp, which the upstream client's default transport brings.
    return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)


def _transport_error(error: Exception) -> BaseException:
    """The transport's own exception under the SDK's. The SDK's aiohttp adapter reports every
    aiohttp connection error, a refused connection included, as `httpx2.ConnectTimeout`, and
    lets some through unmapped (an invalid status line): aiohttp's own exception says which."""
    cause: BaseException = error
    while isinstance(cause.__cause__, (httpx2.TransportError, aiohttp.ClientError)):
        cause = cause.__cause__
    return cause


def _message(error: openai.APIStatusError) -> str | None:
    body = error.body
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str):
            return message
    return None


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` (Azure) or `Retry-After` (seconds only)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, "")) * scale
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return value
    return None
