"""Azurite, the Azure Storage emulator (from npm, pinned in package.json), as the tests' storage
account: its Table service on a free port of 127.0.0.1, in memory, telemetry off, with an
account of its own whose key is made for each start (AZURITE_ACCOUNTS)."""

from __future__ import annotations

import base64
import os
import secrets
import selectors
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
EXECUTABLE = ROOT / "node_modules" / ".bin" / "azurite-table"
_STARTED = b"successfully started"
ACCOUNT = "relaytests"


class Azurite:
    def __init__(self, workspace: Path) -> None:
        self._workspace = workspace
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._key = base64.b64encode(secrets.token_bytes(64)).decode()

    @property
    def connection_string(self) -> str:
        """The tests' account on this instance."""
        fields = {
            "DefaultEndpointsProtocol": "http",
            "AccountName": ACCOUNT,
            "AccountKey": self._key,
            "TableEndpoint": f"http://127.0.0.1:{self.port}/{ACCOUNT}",
        }
        return ";".join(f"{name}={value}" for name, value in fields.items())

    def start(self, timeout: float = 30.0) -> None:
        if not EXECUTABLE.exists():
            raise RuntimeError(f"{EXECUTABLE} is missing: run `npm ci` (scripts/test does)")
        with socket.socket() as probe:  # a free port: Azurite reports none of its own choosing
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [str(EXECUTABLE), "--tableHost", "127.0.0.1", "--tablePort", str(self.port),
                   "--inMemoryPersistence", "--skipApiVersionCheck",
                   "--disableTelemetry", "--silent"]  # fmt: skip
        environ = {**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{self._key}"}
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self._workspace, env=environ
        )
        assert self._process.stdout is not None
        self._wait_until_started(self._process.stdout, timeout)

    def _wait_until_started(self, stdout: IO[bytes], timeout: float) -> None:
        """Until Azurite says it listens (its own word, not a guess at a delay), at most `timeout`."""
        output = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while _STARTED not in output:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.stop()
                    raise RuntimeError(f"Azurite did not start within {timeout:g} s: {output.decode(errors='replace')}")
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    self.stop()
                    raise RuntimeError(f"Azurite exited: {output.decode(errors='replace')}")
                output += chunk

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None
