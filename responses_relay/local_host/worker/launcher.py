"""Runs inside the worker's process: imports the protocol's modules generated for this
interpreter (see `protos.py`), starts the worker program (the vendored worker's `worker.py`,
or `proxy_worker.py`), and ends the process when the host that started it goes away (its
end of stdin closes), so a worker never outlives its host, however the host ended.

    python launcher.py GENERATED_PROTOS_DIR SCRIPT [worker arguments...]
"""

import importlib
import os
import runpy
import sys
import threading
from pathlib import Path


def _exit_with_host() -> None:
    sys.stdin.buffer.read()  # returns at end of file: the host's end of the pipe is closed
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_host, name="host-watch", daemon=True).start()
    protos_package = importlib.import_module("protos_package")  # beside this file, first on sys.path
    protos_package.install(Path(sys.argv[1]))
    script = sys.argv[2]
    sys.argv = [script, *sys.argv[3:]]
    sys.path[0] = os.path.dirname(script)  # as `python SCRIPT` would have it
    runpy.run_path(script, run_name="__main__")
