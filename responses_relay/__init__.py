"""Relay the Azure OpenAI Responses stream to a browser as Server-Sent Events."""
