"""Local host: serves the Functions app on 127.0.0.1:7071 without Core Tools.

It does what the Functions host does in front of a function app: routes under
host.json's prefix, methods, function keys (`LOCAL_FUNCTION_KEY`), CORS, `static/` at
`/`, and a graceful shutdown. Behind it, one of two back ends runs the app:

- in-process (default, fast): the `FunctionApp`'s own callables under uvicorn, which
  is how the Functions Python worker serves streaming functions;
- `--worker`: the real worker Azure runs the app on for this interpreter's version,
  driven over gRPC as Azure drives it: on Python 3.11 and 3.12 the Azure Functions Python
  worker (vendored in `vendor/`), on 3.13 `azure-functions-runtime` behind the project's
  own proxy worker (`worker/program.py` says why).

    python -m responses_relay.local_host [--worker] [--port 7071] [--app-dir .]
"""

from .app import HttpFunction, build_asgi_app, route_prefix
from .in_process import http_functions

__all__ = ["HttpFunction", "build_asgi_app", "http_functions", "route_prefix"]
