"""Conversations: sessions whose follow-up questions remember the thread (see ``docs/protocol.md``)."""
