"""A stand-in Lambda handler that records every event the local gateway builds.

Loaded by ``selador serve --handler recording_handler.lambda_handler`` (this directory is put on
the gateway's PYTHONPATH). Each event is appended as one JSON line to ``CONFORMANCE_EVENTS_FILE``;
the answer is the smallest proxy response that accepts a ``$connect`` and answers an HTTP route.
Nothing is posted back: the tests read the file.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

_lock = threading.Lock()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    line = json.dumps(event, separators=(",", ":")) + "\n"
    with _lock, open(os.environ["CONFORMANCE_EVENTS_FILE"], "a", encoding="utf-8") as out:
        out.write(line)
    if event.get("version") == "2.0":
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": '{"recorded":true}',
        }
    return {"statusCode": 200}
