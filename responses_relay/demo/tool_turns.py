"""The demo model's tool use, decided from each request alone (the demo keeps nothing per request).

- Asked what time it is somewhere, it calls `local_time` once for each place it knows in the
  question (when the request offers that tool; otherwise it says it cannot check).
- Asked about the weather, it wants a remote MCP server's `get_forecast`: that of the request's
  first MCP tool, or of a pretend `demo_weather` server, so approvals show offline too. It asks
  for the caller's approval first, unless that tool says `require_approval: never`.
- Continued with `function_call_output` items, it answers from their outputs; continued with an
  `mcp_approval_response`, it makes the approved call and answers, or answers without it.

What a continuation needs of the question (its language, the place) rides in the ids the demo
gave its calls, as a real model's state rides in its stored response.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from .answers import Answer, RemoteCall, ToolCall, is_japanese

_TIME_WORDS = ("何時", "時刻", "what time", "time is it", "local time", "time in")
_WEATHER_WORDS = ("天気", "天候", "予報", "weather", "forecast")
_DEMO_SERVER = "demo_weather"
# A demo call's id: call_<language>_<place>_<hex> (mcpr_ for an approval request).
_CALL_ID = re.compile(r"(?:call|mcpr)_(ja|en)_([a-z-]+)_[0-9a-f]+")


@dataclass(frozen=True)
class Place:
    slug: str
    zone: str
    ja: str
    en: str


PLACES = (
    Place("kyoto", "Asia/Tokyo", "京都", "Kyoto"),
    Place("tokyo", "Asia/Tokyo", "東京", "Tokyo"),
    Place("osaka", "Asia/Tokyo", "大阪", "Osaka"),
    Place("nara", "Asia/Tokyo", "奈良", "Nara"),
    Place("shiga", "Asia/Tokyo", "滋賀", "Shiga"),
    Place("sapporo", "Asia/Tokyo", "札幌", "Sapporo"),
    Place("paris", "Europe/Paris", "パリ", "Paris"),
    Place("london", "Europe/London", "ロンドン", "London"),
    Place("new-york", "America/New_York", "ニューヨーク", "New York"),
)
_HOME = PLACES[0]
_TIPS = {  # by the hour it is there: (from that hour, the tip)
    "ja": (
        (0, "夜遅い時間です。明日に備えてゆっくり休みましょう。"),
        (5, "朝のうちに人気の名所を回れば、混雑を避けられます。"),
        (10, "街歩きにぴったりの時間です。"),
        (17, "夕方からは夜景や夕食を楽しむ時間です。"),
        (21, "夜遅い時間です。明日に備えてゆっくり休みましょう。"),
    ),
    "en": (
        (0, "It is late there: time to rest for tomorrow."),
        (5, "Early is the best time to see the famous sights before the crowds."),
        (10, "A fine time for a walk around town."),
        (17, "The evening is for the night views and dinner."),
        (21, "It is late there: time to rest for tomorrow."),
    ),
}


def tool_answer(request: dict[str, Any], question: str) -> Answer | None:
    """The answer that uses tools, or continues after them; None when none applies."""
    items = _items(request)
    trailing = _trailing_outputs(items)
    if trailing:
        return _time_answer(trailing)
    approvals = [item for item in items if item.get("type") == "mcp_approval_response"]
    if approvals and not any(item.get("role") == "user" for item in items):
        return _forecast_answer(approvals[0], request)
    lowered = question.lower()
    language = "ja" if is_japanese(question) else "en"
    places = _places(question) or [_HOME]
    if any(word in lowered for word in _TIME_WORDS):
        return _time_calls(request, places, language)
    if any(word in lowered for word in _WEATHER_WORDS):
        return _forecast_request(request, places[0], language)
    return None


def _time_calls(request: dict[str, Any], places: list[Place], language: str) -> Answer:
    if not _offers(request, "local_time"):
        if language == "ja":
            return Answer("デモでは時刻を調べられません。ツール local_time が有効になっていません（設定 TOOLS）。")
        return Answer("In this demo I cannot check the time: the local_time tool is off (the TOOLS setting).")
    calls = tuple(
        ToolCall(_id("call", language, place), "local_time", orjson.dumps({"timezone": place.zone}).decode())
        for place in places
    )
    return Answer("", calls=calls)


def _time_answer(outputs: list[dict[str, Any]]) -> Answer:
    """The answer from local_time's outputs."""
    lines: list[str] = []
    language = "en"
    hour: int | None = None
    for item in outputs:
        language, place = _call_of(str(item.get("call_id", "")))
        result = _json(item.get("output"))
        moment = _moment(result.get("local_time"))
        if moment is None:
            problem = str(result.get("error", "?"))
            lines.append(
                f"{place.ja}の時刻は確認できませんでした（{problem}）。"
                if language == "ja"
                else f"I could not check the time in {place.en} ({problem})."
            )
            continue
        hour = moment.hour if hour is None else hour
        zone = result.get("timezone", place.zone)
        lines.append(
            f"{place.ja}は今 {moment.month}月{moment.day}日 {moment.hour}時{moment.minute:02d}分です（{zone}）。"
            if language == "ja"
            else f"In {place.en} it is now {moment:%H:%M} on {moment:%B} {moment.day} ({zone})."
        )
    if hour is not None:
        lines.append(next(tip for start, tip in reversed(_TIPS[language]) if hour >= start))
    return Answer(("" if language == "ja" else " ").join(lines))


def _forecast_request(request: dict[str, Any], place: Place, language: str) -> Answer:
    label, approval = _mcp_server(request)
    arguments = orjson.dumps({"city": place.en}).decode()
    if approval == "never":
        return _forecast(label, arguments, place, language)
    return Answer("", approvals=(RemoteCall(_id("mcpr", language, place), label, "get_forecast", arguments),))


def _forecast_answer(approval: dict[str, Any], request: dict[str, Any]) -> Answer:
    language, place = _call_of(str(approval.get("approval_request_id", "")))
    if approval.get("approve") is True:
        label, _ = _mcp_server(request)
        return _forecast(label, orjson.dumps({"city": place.en}).decode(), place, language)
    if language == "ja":
        return Answer(
            f"承知しました。天気予報は調べずにお答えします。{place.ja}は朝晩冷え込むので、暖かい服装でどうぞ。"
        )
    return Answer(f"All right, I will not look it up. {place.en} can be chilly in the mornings, so dress warmly.")


def _forecast(label: str, arguments: str, place: Place, language: str) -> Answer:
    """The made MCP call and the answer from it (a demo forecast, not a real one)."""
    forecast = {"city": place.en, "forecast": "sunny, then cloudy", "high_c": 12, "low_c": 4, "source": "demo"}
    made = RemoteCall("mcp_" + uuid.uuid4().hex, label, "get_forecast", arguments, orjson.dumps(forecast).decode())
    if language == "ja":
        text = f"{place.ja}の明日の天気（デモ）は晴れのちくもり、最高 12°C、最低 4°C です。上着をお忘れなく。"
    else:
        text = f"Tomorrow in {place.en} (demo): sunny, then cloudy, high 12°C, low 4°C. Bring a jacket for the evening."
    return Answer(text, remote_calls=(made,))


def _items(request: dict[str, Any]) -> list[dict[str, Any]]:
    value = request.get("input")
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _trailing_outputs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The function_call_output items the input ends with (a continuation after calls)."""
    trailing: list[dict[str, Any]] = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        trailing.insert(0, item)
    return trailing


def _offers(request: dict[str, Any], name: str) -> bool:
    tools = request.get("tools")
    return isinstance(tools, list) and any(
        isinstance(tool, dict) and tool.get("type") == "function" and tool.get("name") == name for tool in tools
    )


def _mcp_server(request: dict[str, Any]) -> tuple[str, str]:
    """The label and approval policy of the request's first MCP tool, else the pretend server's."""
    for tool in request.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "mcp" and isinstance(tool.get("server_label"), str):
            return tool["server_label"], str(tool.get("require_approval", "always"))
    return _DEMO_SERVER, "always"


def _places(question: str) -> list[Place]:
    """The known places the question names, in its order."""
    lowered = question.lower()
    found: list[tuple[int, Place]] = []
    for place in PLACES:
        at = [index for index in (question.find(place.ja), lowered.find(place.en.lower())) if index >= 0]
        if at:
            found.append((min(at), place))
    return [place for _, place in sorted(found, key=lambda pair: pair[0])]


def _id(prefix: str, language: str, place: Place) -> str:
    return f"{prefix}_{language}_{place.slug}_{uuid.uuid4().hex[:16]}"


def _call_of(call_id: str) -> tuple[str, Place]:
    """The language and place a demo call's id carries (English and Kyoto for any other id)."""
    match = _CALL_ID.fullmatch(call_id)
    place = next((place for place in PLACES if match and place.slug == match[2]), _HOME)
    return (match[1] if match else "en"), place


def _json(value: Any) -> dict[str, Any]:
    try:
        parsed = orjson.loads(value) if isinstance(value, str) else None
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
