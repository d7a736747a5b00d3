"""Conversations that last: each user's chats kept, listed and continued on any device.

The messages stay with the model service (the Responses Conversations API, `api.py`); the
relay keeps only an index per user in the Function App's storage account
(`storage/conversations.py`). `routes.py` answers /api/conversations, `answer.py` records an
answer's responses in the index as it streams, `messages.py` turns a conversation's items
into the messages the page draws.
"""
