#!/usr/bin/env python3
r"""Ask Selador one question over its WebSocket API and stream the answer to the terminal.

Usage examples::

    # the local gateway (`make serve`)
    python test_websocket_client.py "What are the zoning requirements?" --query-type zoning
    python test_websocket_client.py "What permits do I need?" --context "Capitol Hill lot"
    # every frame of the run as raw JSON, one per line, in seq order
    python test_websocket_client.py "What permits do I need?" --json
    # a conversation: prints the session id and token to continue it with
    python test_websocket_client.py "What is the FAR in LR2?" --query-type zoning --session-id new
    # a deployed stack (or: export SELADOR_WS_URL=...)
    python test_websocket_client.py "What is the FAR in LR2?" \
        --url "wss://{apiId}.execute-api.us-west-2.amazonaws.com/production?token=$TOKEN"
    # a dropped connection ends the client (exit 2) instead of reconnecting
    python test_websocket_client.py "What is the FAR in LR2?" --no-reconnect

Exit status 0 answered, 1 the query failed or was cancelled, 2 a connection problem or
``--timeout``, 130 quit by a second Ctrl-C. Ctrl-C cancels the run; a dropped connection is resumed.

The client is the Python client library's terminal command, ``selador_client.cli`` (its docstring
has the details); the library is ``clients/python/selador_client`` next to this script and needs
only the ``websockets`` package.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The library lives in this repository, not in the selador package (the Lambda never needs it).
sys.path.insert(0, str(Path(__file__).resolve().parent / "clients" / "python"))
try:
    from selador_client import RunFrames
    from selador_client.cli import ask, main, parse_args
except ImportError as missing:  # copied elsewhere without the library, or without websockets
    sys.exit(
        "test_websocket_client.py needs the selador_client library (clients/python next to it) "
        f"and the websockets package: {missing}"
    )

__all__ = ["RunFrames", "ask", "main", "parse_args"]  # RunFrames: the seq bookkeeping (tests use it)

if __name__ == "__main__":
    sys.exit(main())
