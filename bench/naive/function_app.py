"""The baseline: the straightforward relay users would otherwise write.

As the official samples show it: call `responses.create(stream=True)` with the SDK,
iterate the typed events, and yield each delta as `data:` JSON. Served by the same
local host as the project, so the function's code is the only difference measured.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, StreamingResponse
from openai import AsyncOpenAI

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
client = AsyncOpenAI(base_url=os.environ["OPENAI_ENDPOINT"], api_key=os.environ["OPENAI_API_KEY"])


@app.route(route="chat", methods=[func.HttpMethod.POST])
async def chat(req: Request) -> StreamingResponse:
    body = await req.json()
    stream = await client.responses.create(
        model=os.environ.get("MODEL_DEPLOYMENT_NAME", "gpt-4o-mini"),
        instructions="あなたは親しみやすい観光ガイドです。",
        input=body["input"],
        max_output_tokens=1000,
        temperature=0.8,
        top_p=0.95,
        stream=True,
    )

    async def events() -> AsyncIterator[str]:
        async for event in stream:
            if event.type == "response.output_text.delta":
                yield f"data: {json.dumps({'type': event.type, 'delta': event.delta})}\n\n"
            elif event.type == "response.completed":
                yield f"data: {json.dumps({'type': event.type, 'status': event.response.status})}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
