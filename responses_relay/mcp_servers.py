"""Remote MCP servers (the MCP_SERVERS setting), offered to the model as the Responses API's
`type: "mcp"` tools: the model service calls them itself, asking the caller's approval first
when `require_approval` says so.

MCP_SERVERS is a JSON list:

    [{"server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp",
      "require_approval": "always", "allowed_tools": ["ask_question"],
      "headers": {"Authorization": "DEEPWIKI_AUTHORIZATION"}}]

`headers` maps a header to the name of the setting that holds its value, so a secret stays a
setting of its own (a Key Vault reference in Azure) and never sits in MCP_SERVERS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

APPROVALS = ("always", "never")
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,100}")
_SETTING = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_FIELDS = ("server_label", "server_url", "require_approval", "allowed_tools", "headers")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class McpServer:
    label: str
    url: str
    require_approval: str  # always or never
    allowed_tools: tuple[str, ...] | None
    headers: tuple[tuple[str, str], ...] = field(repr=False)  # (header, its value from a setting)

    def definition(self) -> dict[str, Any]:
        """The Responses API's MCP tool."""
        tool: dict[str, Any] = {
            "type": "mcp",
            "server_label": self.label,
            "server_url": self.url,
            "require_approval": self.require_approval,
        }
        if self.allowed_tools is not None:
            tool["allowed_tools"] = list(self.allowed_tools)
        if self.headers:
            tool["headers"] = dict(self.headers)
        return tool


def parse_mcp_servers(raw: str | None, environ: Mapping[str, str]) -> tuple[McpServer, ...]:
    """The servers MCP_SERVERS lists (None: none); ValueError, one line naming the field, for anything wrong."""
    if raw is None:
        return ()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError('MCP_SERVERS must be JSON: a list of servers such as [{"server_label": ...}]') from None
    if not isinstance(value, list):
        raise ValueError("MCP_SERVERS must be a JSON list of servers")
    servers = tuple(_server(item, f"MCP_SERVERS[{index}]", environ) for index, item in enumerate(value))
    labels = [server.label for server in servers]
    if len(set(labels)) != len(labels):
        raise ValueError("MCP_SERVERS: each server_label must be different")
    return servers


def _server(value: Any, where: str, environ: Mapping[str, str]) -> McpServer:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object with server_label and server_url")
    unknown = [name for name in value if name not in _FIELDS]
    if unknown:
        raise ValueError(f"{where} has an unknown field {unknown[0][:40]!r}; the fields are {', '.join(_FIELDS)}")
    label = value.get("server_label")
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ValueError(f"{where}.server_label must be a name of letters, digits, _ and - (at most 64)")
    approval = value.get("require_approval", "always")
    if approval not in APPROVALS:
        raise ValueError(f"{where}.require_approval must be always or never")
    return McpServer(
        label=label,
        url=_url(value.get("server_url"), f"{where}.server_url"),
        require_approval=approval,
        allowed_tools=_names(value.get("allowed_tools"), f"{where}.allowed_tools"),
        headers=_headers(value.get("headers"), f"{where}.headers", environ),
    )


def _url(value: Any, where: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where} must be an https URL")
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        raise ValueError(f"{where} must use https (plain http is allowed only for localhost)")
    return str(value)


def _names(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise ValueError(f"{where} must be a list of tool names")
    return tuple(value)


def _headers(value: Any, where: str, environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValueError(f"{where} must map header names to the names of the settings that hold their values")
    headers = []
    for header, setting in value.items():
        if not _HEADER.fullmatch(header) or not isinstance(setting, str) or not _SETTING.fullmatch(setting):
            raise ValueError(
                f'{where} must map header names to setting names, such as {{"Authorization": "MCP_TOKEN"}}'
            )
        secret = environ.get(setting, "").strip()
        if not secret:
            raise ValueError(f"{where}.{header} names the setting {setting}, which is not set")
        headers.append((header, secret))
    return tuple(headers)
