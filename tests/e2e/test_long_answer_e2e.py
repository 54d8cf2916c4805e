"""A 1 MB answer reaches a real client whole through the local gateway, no frame over 128 KiB."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import collect_frames, invoke_message, start_gateway, ws_connect

pytestmark = pytest.mark.e2e

MAX_MESSAGE_BYTES = 128 * 1024


async def test_one_megabyte_answer_arrives_whole() -> None:
    with start_gateway(
        "--env",
        "LOCAL_MODEL_TOKEN_DELAY_MS=0",
        "--env",
        "LOCAL_MODEL_MIN_ANSWER_TOKENS=180000",
        # Strands concatenates streamed text per chunk: bigger chunks keep a 1 MB answer fast.
        "--env",
        "LOCAL_MODEL_TOKENS_PER_DELTA=32",
    ) as gw:
        request_id = "long-" + uuid.uuid4().hex[:8]
        async with ws_connect(gw.endpoints.ws_url) as ws:
            await ws.send(invoke_message("What is the FAR in LR2?", request_id, query_type="zoning"))
            frames = (await collect_frames(ws, {request_id}, timeout=120))[request_id]

    answer = "".join(f["content"] for f in frames if f["type"] == "delta")
    result = frames[-1]
    assert result["type"] == "result"
    assert len(answer.encode()) >= 1_000_000
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert max(len(json.dumps(f).encode()) for f in frames) <= MAX_MESSAGE_BYTES
    data = result["data"]
    # The result cannot hold 1 MB in one frame: it is cut and says so; the deltas carry it all.
    assert data["content_truncated"] is True
    assert data["content_length"] == len(answer)
    assert answer.startswith(data["content"])
    message = next(f for f in frames if f["type"] == "message")
    assert message["content_truncated"] is True and answer.startswith(message["content"])
    # Coalescing keeps a 1 MB answer to tens or hundreds of frames, not one per token.
    assert len(frames) < 400
