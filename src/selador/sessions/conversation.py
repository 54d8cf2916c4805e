"""One turn of a conversation: what the agent is built with, and how the turn is committed.

The orchestrator builds its agent with :meth:`Conversation.agent_options` (a Strands
``RepositorySessionManager`` over :class:`~.repository.StoreSessionRepository`, the turn window,
one agent id for the whole thread), so Strands restores the history and stores every new message
itself. When the answer is complete, :meth:`Conversation.commit` makes the turn part of the
history in one conditional write, before the ``result`` frame goes out: a client that asks its
follow-up the moment it reads the result finds the turn there. A turn that fails or is cancelled is
never committed, so its messages are never read back (see :mod:`selador.store.sessions`).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from strands.session.repository_session_manager import RepositorySessionManager

from selador.sessions.repository import StoreSessionRepository
from selador.sessions.service import AGENT_ID, Opening, Sessions
from selador.sessions.window import TurnWindowConversationManager
from selador.store.sessions import CHILD_TTL_FACTOR, MAX_TITLE_CHARS, TurnCommit, TurnRecord

if TYPE_CHECKING:
    from selador.protocol import ResultData
    from selador.settings import Settings
    from selador.store.base import Store
    from selador.store.sessions import SessionRecord


class Conversation:
    """The session a run's question belongs to, for the length of one turn.

    Args:
        store: The container's store.
        settings: The container's settings.
        owner: The session's owner (from the run record).
        session_id: The session's id.
    """

    def __init__(self, store: Store, settings: Settings, owner: str, session_id: str) -> None:
        self.store = store
        self.settings = settings
        self.owner = owner
        self.session_id = session_id
        self.record: SessionRecord | None = None
        self.repository: StoreSessionRepository | None = None

    def open(self, question: str) -> None:
        """Read the session (creating it again if it was deleted or expired since the query began)."""
        record = self.store.get_session(self.owner, self.session_id)
        if record is None:
            opening = Opening(self.owner, self.session_id, None, None)
            record = Sessions(self.store, self.settings).create(opening, question)
        self.record = record
        self.repository = StoreSessionRepository(self.store, record, self.settings.session_ttl_seconds)

    def agent_options(self) -> dict[str, Any]:
        """Keyword arguments for the turn's Strands ``Agent``."""
        if self.repository is None:
            raise RuntimeError("open() the conversation first")
        return {
            "agent_id": AGENT_ID,
            "session_manager": RepositorySessionManager(
                session_id=self.session_id, session_repository=self.repository
            ),
            "conversation_manager": TurnWindowConversationManager(self.settings.session_max_turns),
        }

    def commit(self, question: str, data: ResultData) -> bool:
        """Make this turn part of the conversation.

        Returns:
            ``False`` when the session changed meanwhile (deleted, or another turn committed):
            the answer stands, but the conversation does not include it.
        """
        record, repository = self.record, self.repository
        if record is None or repository is None:
            raise RuntimeError("open() the conversation first")
        now = time.time()
        ttl = self.settings.session_ttl_seconds
        expires_at = int(now + ttl) + 1
        child_expiry = int(now + ttl * CHILD_TTL_FACTOR)
        refreshed = None
        if expires_at > record.children_expire_at:
            # The session would outlive its oldest children: extend them all, once per half TTL.
            self.store.refresh_children(
                record.owner,
                record.session_id,
                record.generation,
                agent_ids=tuple(sorted(repository.agent_ids)),
                messages=repository.next_message_id,
                turns=record.turns,
                expires_at=child_expiry,
            )
            refreshed = child_expiry
        turn = TurnRecord(
            index=record.turns,
            question=question,
            answer=data.content,
            agent=data.agent,
            sources=json.dumps(
                [source.model_dump(mode="json", exclude_none=True) for source in data.sources],
                ensure_ascii=False,
                separators=(",", ":"),
            ),
            created_at=now,
        )
        # Before the commit: a turn committed without its agent record would not be restored.
        repository.write_agents()
        commit = TurnCommit(
            turn=turn,
            messages=repository.next_message_id,
            last_used_at=now,
            expires_at=expires_at,
            children_expire_at=refreshed,
            title=None if record.title else question[:MAX_TITLE_CHARS],
        )
        return self.store.commit_turn(record.owner, record.session_id, record.generation, commit)
