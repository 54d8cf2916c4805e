"""Durable runs: a query's identity, frame log and controls, shared by the WebSocket and HTTP APIs.

A run is created when a query is accepted and ends with exactly one terminal frame. Its frames are
logged in the store as they are posted, so a client that lost its connection can ``resume`` (replay
what it missed and receive the rest) and any client holding the run's token can ``cancel`` it,
whichever Lambda invocation or worker process is running it.

Modules: :mod:`.model` (tokens, names, terminal outcomes), :mod:`.sender` (logs and posts a run's
frames), :mod:`.service` (start, resume, cancel, status), :mod:`.executor` (runs the agent),
:mod:`.jobs` (the asynchronous hand-off). Nothing here imports strands until a run executes.
"""
