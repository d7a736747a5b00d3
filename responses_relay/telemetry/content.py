"""Questions, answers and tool arguments in the GenAI conventions' message format, for the
span attributes that hold them (`gen_ai.input.messages`, `gen_ai.output.messages`, ...). Used
only when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT asks for content on spans:
otherwise no text of a question or an answer is ever recorded.

On spans the conventions allow these as JSON strings, which is how they are written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..chat_request import ChatRequest, input_items

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"


def input_messages(request: ChatRequest) -> str:
    """The messages a model call sends: the caller's, or a continuation's tool outputs."""
    messages: list[dict[str, Any]] = []
    for item in input_items(request.input):
        if item.get("type") == "function_call_output":
            part = {"type": "tool_call_response", "id": item.get("call_id"), "response": item.get("output")}
            messages.append({"role": "tool", "parts": [part]})
        elif isinstance(item.get("content"), str):
            messages.append({"role": item.get("role"), "parts": [{"type": "text", "content": item["content"]}]})
        elif item.get("type") in ("message", "function_call"):  # a continuation's history, without stored responses
            messages += output_messages([item], None)
    return _json(messages)


def output_messages(output: list[Any], finish_reason: str | None) -> list[dict[str, Any]]:
    """The response's output items as one assistant message: its text, refusals and tool calls."""
    parts: list[dict[str, Any]] = []
    for item in (item for item in output if isinstance(item, Mapping)):
        if item.get("type") == "function_call":
            parts.append({"type": "tool_call", "id": item.get("call_id"), "name": item.get("name"), **_arguments(item)})
        elif item.get("type") == "message" and isinstance(item.get("content"), list):
            texts = (_text(content) for content in item["content"] if isinstance(content, Mapping))
            parts += [{"type": "text", "content": text} for text in texts if text is not None]
    message: dict[str, Any] = {"role": "assistant", "parts": parts}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return [message] if parts else []


def system_instructions(instructions: str) -> str:
    return _json([{"type": "text", "content": instructions}])


def to_json(value: object) -> str:
    return _json(value)


def _text(content: Mapping[str, Any]) -> str | None:
    """An answer's text, or a refusal's."""
    text = content.get("text") if content.get("type") == "output_text" else content.get("refusal")
    return text if isinstance(text, str) else None


def _arguments(item: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments as an object when they are JSON (the conventions want one), else as written."""
    arguments = item.get("arguments")
    try:
        return {"arguments": orjson.loads(arguments)} if isinstance(arguments, str) else {}
    except orjson.JSONDecodeError:
        return {"arguments": arguments}


def _json(value: object) -> str:
    return orjson.dumps(value).decode()
