"""A bare ``websockets`` server that streams recorded frames: the limit of this machine.

Run by path: ``python bench/_bare_server.py SCRIPT.json``. It prints ``PORT <n>`` when listening.
For every ``invoke`` message it replays the frames of one real answer (recorded through the local
gateway) with their recorded spacing, stamping the message's ``request_id``, a ``seq`` and a
timestamp: the same frames, with no handler, no agent and no @connections hop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.server import ServerConnection, serve

with open(sys.argv[1]) as handle:
    SCRIPT: list[tuple[float, dict]] = [(float(t), f) for t, f in json.load(handle)]


async def replay(ws: ServerConnection, request_id: str) -> None:
    started = time.monotonic()
    for offset, frame in SCRIPT:
        wait = started + offset - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await ws.send(json.dumps({**frame, "request_id": request_id, "timestamp": time.time()}))


async def handler(ws: ServerConnection) -> None:
    tasks = set()
    async for message in ws:
        body = json.loads(message)
        task = asyncio.create_task(replay(ws, body.get("request_id", "r")))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for task in list(tasks):
        task.cancel()


async def main() -> None:
    async with serve(
        handler, "127.0.0.1", 0, backlog=2048, max_size=None, ping_interval=None, compression=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Future()


asyncio.run(main())
