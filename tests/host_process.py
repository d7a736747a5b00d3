"""The local host as a real process (`python -m responses_relay.local_host`), as `scripts/run`
starts it, with its output collected line by line for tests to read."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_READY = re.compile(r"Functions app on (http://\S+?)/ ")


class HostProcess:
    def __init__(self, *arguments: str, environ: Mapping[str, str], app_dir: Path = ROOT) -> None:
        # The app comes from `app_dir` alone (the host's own package from the working directory).
        dropped = ("APPLICATIONINSIGHTS", "OTEL", "PYTHONPATH")
        clean = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
        self._command = [sys.executable, "-m", "responses_relay.local_host", "--port", "0", "--app-dir", str(app_dir)]
        self._command += arguments
        self._environ = {**clean, **environ}
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._changed = threading.Condition()
        self.lines: list[str] = []
        self._ended = False  # the output has ended: the process is gone
        self.url = ""

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self._process is not None, "start() the host first"
        return self._process

    def start(self, timeout: float = 60) -> str:
        """Start the host and wait until it serves; returns its base URL."""
        self._process = subprocess.Popen(
            self._command, cwd=ROOT, env=self._environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, name="host-output", daemon=True)
        self._reader.start()
        try:
            line = self.wait_for(lambda line: bool(_READY.search(line)), timeout)
        except AssertionError:
            self.stop()  # it may still run, stuck: never leave it behind
            raise
        match = _READY.search(line)
        assert match is not None
        self.url = match[1]
        return self.url

    def wait_for(self, matches: Callable[[str], bool], timeout: float = 30) -> str:
        """The first output line that `matches`, waiting for it; fails if the output ends first."""
        with self._changed:
            self._changed.wait_for(lambda: self._first(matches) is not None or self._ended, timeout)
            found = self._first(matches)
        if found is None:
            raise AssertionError("the host never printed the line wanted; its output:\n" + self.output)
        return found

    def worker_pid(self) -> int:
        """With --worker: the worker's process id, as the host printed it."""
        line = self.wait_for(lambda line: line.startswith("Functions worker started (pid "))
        return int(line.removeprefix("Functions worker started (pid ").rstrip(")"))

    def wait_exit(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as the platform stops an instance; SIGKILL if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.wait_exit(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.wait_exit(timeout)

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def _first(self, matches: Callable[[str], bool]) -> str | None:
        return next((line for line in self.lines if matches(line)), None)

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        stdout.close()
        with self._changed:
            self._ended = True
            self._changed.notify_all()
