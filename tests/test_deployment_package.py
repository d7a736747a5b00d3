"""What a deployment carries: the files `.funcignore` leaves in (azd and Core Tools read it with
gitignore's rules, as git does here). Azure gets the app and nothing that only the tests, the
benchmark, the docs or the local host use; and the app indexes and makes its demo upstream
from those files alone."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .test_telemetry import run_python

ROOT = Path(__file__).resolve().parent.parent
APP_FILES = {"function_app.py", "host.json", "requirements.txt"}


def git_files(*options: str) -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", *options], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    return set(listed.stdout.splitlines())


def deployed_files() -> set[str]:
    """The tracked files a deployment takes: all but those .funcignore names."""
    return git_files() - git_files("--ignored", "--exclude-from=.funcignore")


def test_a_deployment_carries_the_app_and_nothing_else() -> None:
    deployed = deployed_files()
    assert deployed >= APP_FILES
    others = sorted(name for name in deployed - APP_FILES if not name.startswith("responses_relay/"))
    assert others == [], "not the app's, yet deployed"
    assert not [name for name in deployed if name.startswith("responses_relay/local_host/")], "the local host"
    assert "responses_relay/service.py" in deployed
    assert "responses_relay/demo/server.py" in deployed


INDEX = """
import asyncio, json, pathlib, sys
import function_app
from responses_relay.service import ChatService
from responses_relay.settings import load_settings
functions = {
    f.get_function_name(): f.get_bindings_dict()["bindings"][0]["route"] for f in function_app.app.get_functions()
}
async def first_chat():
    service = ChatService(load_settings())
    await service.upstream()  # demo mode: the built-in demo upstream, as a deployment without an endpoint
    await service.aclose()
asyncio.run(first_chat())
print(json.dumps({"file": function_app.__file__, "functions": functions}))
"""


def test_the_app_indexes_and_starts_from_the_deployed_files_alone(tmp_path: Path) -> None:
    for name in deployed_files():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    unset = {"OPENAI_ENDPOINT": "", "OPENAI_API_KEY": "", "USER_DAILY_TOKENS": "", "PYTHONPATH": str(tmp_path)}
    result = run_python(INDEX, unset, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert Path(seen["file"]).parent == tmp_path
    assert seen["functions"] == {
        "chat": "chat",
        "resume": "chat/{response_id}",
        "cancel": "chat/{response_id}/cancel",
        "conversations": "conversations",
        "conversation": "conversations/{conversation_id}",
        "ai_sdk_chat": "ai-sdk/chat",
        "ai_sdk_resume": "ai-sdk/chat/{chat_id}/stream",
        "ag_ui_run": "ag-ui",
        "ag_ui_resume": "ag-ui/{thread_id}/runs/{run_id}",
        "feedback": "feedback",
        "health": "health",
    }
