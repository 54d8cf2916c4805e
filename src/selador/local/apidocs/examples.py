"""The AsyncAPI document's message examples: those of ``docs/protocol.md``, built with the models.

Frames are made by the protocol's models and serialised as the server does (``exclude_none``), so
they are valid frames by construction; the actions are written out, and a test validates every
example against its message's schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from selador.protocol import (
    DeltaFrame,
    ErrorFrame,
    MessageFrame,
    PongFrame,
    ResultData,
    ResultFrame,
    Source,
    StatusFrame,
    Usage,
)

GATEWAY_MESSAGE = "apiGatewayMessage"
"""The name of API Gateway's own messages in the document."""


def _frame(model: BaseModel) -> dict[str, Any]:
    """An example as it goes on the wire (``type`` first for the reader)."""
    data = model.model_dump(mode="json", exclude_none=True)
    return {"type": data.pop("type"), **data} if "type" in data else data


_T = 1763900000.12
_RUN_TOKEN = "rt1.Y2c4ZGVmMTIz.kq3W9mZ2xv7aJ4tq1cQ8XpLr"  # noqa: S105 - an example, not a secret
_ANSWER = "For residential development in the LR2 zone…"


def _example_data() -> tuple[ResultData, ResultData]:
    """An answered run's ``result`` data and a cancelled one's."""
    answered = ResultData(
        content=_ANSWER,
        agent="rag",
        query_type="zoning",
        tools_available=5,
        tools_used=2,
        tool_calls={"search_knowledge_base": 1, "zoning_standards": 1},
        sources=[
            Source(
                title="Lowrise multifamily zones (LR1, LR2, LR3)",
                location="https://library.municode.com/wa/seattle/codes/municipal_code",
                section="SMC 23.45.510 Floor area ratio",
                score=7.31,
            )
        ],
        usage=Usage(input_tokens=812, output_tokens=240, total_tokens=1052),
        duration_ms=1893,
        model="offline",
    )
    cancelled = answered.model_copy(
        update={
            "success": False,
            "content": "For residential development in the LR2 zone, the",
            "stop_reason": "cancelled",
            "sources": [],
            "tools_used": 1,
            "tool_calls": {"search_knowledge_base": 1},
            "usage": Usage(input_tokens=210, output_tokens=12, total_tokens=222),
            "duration_ms": 412,
        }
    )
    return answered, cancelled


def message_examples() -> dict[str, list[dict[str, Any]]]:
    """Each message's examples (those of ``docs/protocol.md``), by message name.

    Returns:
        Message name to its AsyncAPI ``examples``: ``[{"name", "payload"}…]``.
    """
    run: dict[str, Any] = {"request_id": "q-17", "timestamp": _T}
    answered, cancelled = _example_data()
    question = "What are the zoning requirements for residential development?"
    examples: dict[str, list[tuple[str, dict[str, Any] | BaseModel]]] = {
        "invoke": [
            (
                "a question",
                {
                    "action": "invoke",
                    "question": question,
                    "context": "Looking at a property in Capitol Hill area",
                    "query_type": "zoning",
                    "request_id": "q-17",
                },
            ),
            (
                "in a new conversation",
                {
                    "action": "invoke",
                    "question": "What is the FAR in LR2?",
                    "request_id": "q-1",
                    "session_id": "new",
                },
            ),
        ],
        "resume": [
            (
                "after seq 12",
                {"action": "resume", "request_id": "q-17", "after_seq": 12, "run_token": _RUN_TOKEN},
            )
        ],
        "cancel": [("cancel", {"action": "cancel", "request_id": "q-17", "run_token": _RUN_TOKEN})],
        "ping": [("ping", {"action": "ping"})],
        "status": [
            (
                "accepted",
                StatusFrame(
                    message="Processing your query...", stage="accepted", run_token=_RUN_TOKEN, seq=1, **run
                ),
            ),
            (
                "routed",
                StatusFrame(message="Routed to the rag agent", stage="routed", agent="rag", seq=2, **run),
            ),
            (
                "a tool call",
                StatusFrame(
                    message="Calling search_knowledge_base (step 1)",
                    stage="tool",
                    tool="search_knowledge_base",
                    step=1,
                    seq=3,
                    **run,
                ),
            ),
            ("composing", StatusFrame(message="Composing the answer", stage="composing", seq=5, **run)),
        ],
        "delta": [
            ("a piece of the answer", DeltaFrame(content="For residential development in ", seq=6, **run))
        ],
        "message": [("the answer", MessageFrame(content=_ANSWER, seq=12, **run))],
        "result": [
            ("answered", ResultFrame(data=answered, seq=13, **run)),
            ("cancelled", ResultFrame(data=cancelled, seq=9, **run)),
        ],
        "error": [
            (
                "a run failed (terminal)",
                ErrorFrame(
                    error="The model service is busy; please try again", code="throttled", seq=4, **run
                ),
            ),
            (
                "a message refused (no seq)",
                ErrorFrame(error="question: must not be empty or only whitespace", code="bad_request", **run),
            ),
        ],
        "pong": [("pong", PongFrame(timestamp=_T))],
        GATEWAY_MESSAGE: [
            (
                "a route took over 29 s",
                {
                    "message": "Endpoint request timed out",
                    "connectionId": "L0SM9cOF=",
                    "requestId": "L0SM9FIj=",
                },
            )
        ],
    }
    return {
        name: [
            {"name": title, "payload": _frame(payload) if isinstance(payload, BaseModel) else payload}
            for title, payload in items
        ]
        for name, items in examples.items()
    }
