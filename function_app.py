"""Azure Functions app (Python v2 model): relays the Azure OpenAI Responses stream as SSE.

Routes and wiring only; the logic lives in the `responses_relay` package.
"""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from responses_relay import telemetry
from responses_relay.protocol_service import ProtocolService
from responses_relay.service import ChatService
from responses_relay.settings import load_settings


def create_app(chat_service: ChatService) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    # AUTH_MODE=entra: the function checks the caller's bearer token itself, so the host checks no key.
    entra = chat_service.settings.access.mode == "entra"
    callers = func.AuthLevel.ANONYMOUS if entra else func.AuthLevel.FUNCTION

    @app.route(route="chat", methods=[func.HttpMethod.POST], auth_level=callers)
    async def chat(req: Request) -> Response:
        return await chat_service.chat(req)

    @app.route(route="chat/{response_id}", methods=[func.HttpMethod.GET], auth_level=callers)
    async def resume(req: Request) -> Response:
        return await chat_service.resume(req, req.path_params["response_id"])

    @app.route(route="chat/{response_id}/cancel", methods=[func.HttpMethod.POST], auth_level=callers)
    async def cancel(req: Request) -> Response:
        return await chat_service.cancel(req, req.path_params["response_id"])

    @app.route(route="conversations", methods=[func.HttpMethod.GET, func.HttpMethod.POST], auth_level=callers)
    async def conversations(req: Request) -> Response:
        return await chat_service.conversations(req)

    conversation_methods = [func.HttpMethod.GET, func.HttpMethod.PATCH, func.HttpMethod.DELETE]

    @app.route(route="conversations/{conversation_id}", methods=conversation_methods, auth_level=callers)
    async def conversation(req: Request) -> Response:
        return await chat_service.conversation(req, req.path_params["conversation_id"])

    protocols = ProtocolService(chat_service)

    @app.route(route="ai-sdk/chat", methods=[func.HttpMethod.POST], auth_level=callers)
    async def ai_sdk_chat(req: Request) -> Response:
        return await protocols.ai_sdk_chat(req)

    @app.route(route="ai-sdk/chat/{chat_id}/stream", methods=[func.HttpMethod.GET], auth_level=callers)
    async def ai_sdk_resume(req: Request) -> Response:
        return await protocols.ai_sdk_resume(req, req.path_params["chat_id"])

    @app.route(route="ag-ui", methods=[func.HttpMethod.POST], auth_level=callers)
    async def ag_ui_run(req: Request) -> Response:
        return await protocols.ag_ui_run(req)

    @app.route(route="ag-ui/{thread_id}/runs/{run_id}", methods=[func.HttpMethod.GET], auth_level=callers)
    async def ag_ui_resume(req: Request) -> Response:
        return await protocols.ag_ui_resume(req, req.path_params["thread_id"], req.path_params["run_id"])

    @app.route(route="feedback", methods=[func.HttpMethod.POST], auth_level=callers)
    async def feedback(req: Request) -> Response:
        return await chat_service.feedback(req)

    @app.route(route="health", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS)
    async def health(req: Request) -> Response:
        return chat_service.health()

    return app


settings = load_settings()
app = create_app(ChatService(settings, observer=telemetry.configure(settings)))
