"""The protocols' own client libraries (from npm, pinned in package.json), run by node: each
script here reads a stream as a front end would and prints what it assembled as JSON."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson

FOLDER = Path(__file__).parent
ROOT = FOLDER.parent.parent
TIMEOUT_SECONDS = 60.0


def node() -> str:
    found = shutil.which("node")
    assert found is not None, "node is not on PATH"
    assert (ROOT / "node_modules" / "ai").is_dir(), "run npm ci first"
    return found


def _result(script: str, returncode: int | None, stdout: bytes, stderr: bytes) -> Any:
    assert returncode == 0, (
        f"{script} failed ({returncode}):\n{stderr.decode(errors='replace')[-4000:]}\n{stdout[-3000:]!r}"
    )
    return orjson.loads(stdout)


def run_client(script: str, *args: str, stdin: bytes = b"") -> Any:
    """Run a client script to its end, feeding it `stdin`; what it printed, parsed."""
    done = subprocess.run(
        [node(), str(FOLDER / script), *args], input=stdin, capture_output=True, timeout=TIMEOUT_SECONDS, cwd=ROOT
    )
    return _result(script, done.returncode, done.stdout, done.stderr)


async def client(script: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run a client script beside the test's event loop (where the relay serves it)."""
    process = await asyncio.create_subprocess_exec(
        node(), str(FOLDER / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return _result(script, process.returncode, stdout, stderr)
