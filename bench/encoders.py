"""What each protocol's encoder costs per relayed delta, measured in this process: the part of the
relay's work that differs between the protocols (the translator before it, the upstream client
and the host around it are the same code for all). An S3 stream's relay events, its deltas merged
as many to an event as the relay merged them in S3, encoded by each protocol's encoder; the
fastest of several repetitions, so another process's load does not count."""

from __future__ import annotations

import time
from collections.abc import Callable

from responses_relay.events import RelayEvent
from responses_relay.protocols import Encoder
from responses_relay.protocols.ag_ui import AgUiEncoder
from responses_relay.protocols.ai_sdk import AiSdkEncoder
from responses_relay.protocols.native import NativeEncoder

ENCODERS: dict[str, Callable[[], Encoder]] = {
    "project": NativeEncoder,
    "ai-sdk": AiSdkEncoder,
    "ag-ui": lambda: AgUiEncoder("bench", "run"),
}
RESPONSE_ID = "resp_" + "0123456789abcdef" * 3  # as long as Azure OpenAI's
DELTA = "1754870000123456789;"  # a delta of the benchmark's emulator: its emit time


def stream(deltas: int, per_event: int) -> list[RelayEvent]:
    """One answer's relay events: its start, `deltas` deltas in events of `per_event`, its end."""
    events: list[RelayEvent] = [("response.created", {"type": "response.created", "response_id": RESPONSE_ID}, 0)]
    for sequence in range(per_event, deltas + 1, per_event):
        events.append(("response.output_text.delta", {"type": "response.output_text.delta",
                                                      "delta": DELTA * per_event}, sequence))  # fmt: skip
    usage = {"input_tokens": 10, "output_tokens": deltas, "total_tokens": deltas + 10}
    end = {"type": "response.completed", "response_id": RESPONSE_ID, "status": "completed", "usage": usage}
    return [*events, ("response.completed", end, deltas + 1)]


def cost_per_delta(encoder: Callable[[], Encoder], per_event: int, deltas: int = 20_000, repeat: int = 7) -> float:
    """Microseconds of CPU per delta to encode a stream, one read's events at a time."""
    events = stream(deltas, per_event)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        made = encoder()
        made.open()
        for event in events:
            made.encode([event])
        made.close()
        best = min(best, time.process_time() - started)
    return best / deltas * 1e6


def costs(per_event: int) -> dict[str, float]:
    return {name: cost_per_delta(encoder, per_event) for name, encoder in ENCODERS.items()}
