"""Frames as they go on the wire: never over API Gateway's 128 KiB message limit."""

from __future__ import annotations

from selador.protocol import MAX_MESSAGE_BYTES, MessageFrame, ResultFrame, _Frame

FRAME_BUDGET_BYTES = MAX_MESSAGE_BYTES - 4096
"""Largest frame we post: under API Gateway's 128 KiB with room for encoding slack."""


def fit_frame(frame: _Frame) -> str:
    """Serialise a frame, truncating a long ``content`` so the frame stays under the budget.

    Only ``message`` and ``result`` frames carry whole answers; their ``content`` is cut (marked
    ``content_truncated``, and ``content_length`` on results) because the deltas already carried
    the complete text. Any other frame type is built small by construction.

    Args:
        frame: The stamped frame.

    Returns:
        The JSON text to post.
    """
    text = frame.to_json()
    size = len(text.encode())
    if size <= FRAME_BUDGET_BYTES:
        return text
    if not isinstance(frame, MessageFrame | ResultFrame):
        raise ValueError(f"{frame.__class__.__name__} exceeds {FRAME_BUDGET_BYTES} bytes")
    content = frame.content if isinstance(frame, MessageFrame) else frame.data.content
    keep = len(content)
    while size > FRAME_BUDGET_BYTES and keep > 0:
        # Escaping makes bytes-per-character uneven, so scale by the measured ratio and re-check.
        keep = int(keep * FRAME_BUDGET_BYTES / size * 0.95)
        if isinstance(frame, MessageFrame):
            text = frame.model_copy(update={"content": content[:keep], "content_truncated": True}).to_json()
        else:
            data = frame.data.model_copy(
                update={"content": content[:keep], "content_truncated": True, "content_length": len(content)}
            )
            text = frame.model_copy(update={"data": data}).to_json()
        size = len(text.encode())
    return text
