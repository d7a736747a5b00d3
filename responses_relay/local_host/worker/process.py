"""The worker's process: spawned as the Functions host spawns it, stopped with the host."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .program import WorkerProgram
from .protos import generated_dir

_LAUNCHER = Path(__file__).with_name("launcher.py")
# Either makes the worker believe it runs in Azure: it re-executes itself and looks for
# packages under /home/site/wwwroot.
_AZURE_MARKERS = ("CONTAINER_NAME", "WEBSITE_INSTANCE_ID")


def worker_environment(app_dir: Path, environ: Mapping[str, str], program: WorkerProgram) -> dict[str, str]:
    environment = {key: value for key, value in environ.items() if key not in _AZURE_MARKERS}
    environment.update(
        FUNCTIONS_WORKER_RUNTIME="python",
        AzureWebJobsScriptRoot=str(app_dir),
        PYTHONUNBUFFERED="1",
        **program.environment,
    )
    return environment


class WorkerProcess:
    def __init__(self, app_dir: Path, program: WorkerProgram) -> None:
        self._app_dir = app_dir
        self._program = program
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self, host_port: int, worker_id: str, request_id: str) -> None:
        arguments = ["--host", "127.0.0.1", "--port", str(host_port), "--workerId", worker_id]
        arguments += ["--requestId", request_id, "--grpcMaxMessageLength", str(2**31 - 1)]
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, str(_LAUNCHER), str(generated_dir()), str(self._program.script), *arguments,
            stdin=asyncio.subprocess.PIPE,  # held open for the worker's life: see launcher.py
            cwd=self._app_dir,
            env=worker_environment(self._app_dir, os.environ, self._program),
        )  # fmt: skip

    async def wait(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
