"""Runs inside the worker's process: starts the vendored worker's `worker.py`, and ends
the process when the host that started it goes away (its end of stdin closes), so a
worker never outlives its host, however the host ended.

    python launcher.py WORKER_PY [worker arguments...]
"""

import os
import runpy
import sys
import threading


def _exit_with_host() -> None:
    sys.stdin.buffer.read()  # returns at end of file: the host's end of the pipe is closed
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_host, name="host-watch", daemon=True).start()
    worker_py = sys.argv[1]
    sys.argv = [worker_py, *sys.argv[2:]]
    sys.path[0] = os.path.dirname(worker_py)  # as `python worker.py` would have it
    runpy.run_path(worker_py, run_name="__main__")
