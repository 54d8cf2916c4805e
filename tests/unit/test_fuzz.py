"""Property-based fuzzing of ``lambda_handler``: whatever arrives, no traceback, valid frames.

Two families of input:

* **message bodies** (text, bytes, JSON-ish values, deep and huge structures, unicode, control
  characters) wrapped in real MESSAGE events for the ``invoke``, ``ping`` and ``$default`` routes;
* **whole events**: random JSON dicts, API Gateway events (WebSocket, HTTP v2, REST v1) with
  fields removed or replaced by values of the wrong type, and HTTP events with random methods,
  paths, headers and bodies.

Invariants checked on every example:

* ``lambda_handler`` never raises; it answers a dict with an ``int`` ``statusCode`` and, when
  there is a body, a ``str`` body without "Traceback";
* every frame posted parses with :func:`selador.protocol.parse_frame` and none contains
  "Traceback";
* a query that posts anything ends with exactly one terminal frame, last, with ``seq`` 1..n.

Posting goes to an in-memory recorder behind the real :class:`ManagementApi` (no moto, no HTTP) and
the store is SQLite, so an example costs well under a millisecond, except where a question
validates and the offline agent really runs: that part is isolated in
``test_valid_questions_run_to_one_terminal_frame`` with a tenth of the examples.

``SELADOR_FUZZ_EXAMPLES`` sets the example count per test (``make test``: 300; ``make fuzz``:
10,000). Derandomised by default so ``make test`` is reproducible; ``make fuzz`` passes
``SELADOR_FUZZ_SEED=random`` through the environment to explore new inputs each run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import string
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from selador.deps import Dependencies, use_dependencies
from selador.handler import lambda_handler
from selador.local.events import (
    connect_event,
    disconnect_event,
    http_v2_event,
    message_event,
    rest_v1_event,
)
from selador.protocol import QUERY_TYPES, TERMINAL_TYPES, parse_frame
from selador.settings import get_settings
from selador.websocket.management import ManagementApi

EXAMPLES = int(os.environ.get("SELADOR_FUZZ_EXAMPLES", "300"))
EXPENSIVE_EXAMPLES = max(20, EXAMPLES // 10)
"""Examples for the part that runs the real agent (about 20 ms each)."""
DERANDOMIZE = os.environ.get("SELADOR_FUZZ_SEED", "") != "random"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    # The environment fixture is function-scoped on purpose: every example shares one "container".
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


# ---------------------------------------------------------------------------------- harness


class RecordingClient:
    """A stand-in for the boto3 ``apigatewaymanagementapi`` client: keeps every posted frame."""

    def __init__(self) -> None:
        self.posts: dict[str, list[bytes]] = defaultdict(list)

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        assert isinstance(Data, bytes), f"posted {type(Data).__name__}, not bytes"
        self.posts[ConnectionId].append(Data)

    def delete_connection(self, ConnectionId: str) -> None:
        self.posts.pop(ConnectionId, None)

    def clear(self) -> None:
        self.posts.clear()


@pytest.fixture
def recorder() -> Iterator[RecordingClient]:
    """Install dependencies that post into a :class:`RecordingClient`, quietly."""
    client = RecordingClient()
    deps = Dependencies(settings=get_settings(), management_factory=lambda _endpoint: ManagementApi(client))
    # Thousands of "rejected message" lines would dominate the run time; warnings still show.
    quiet = [logging.getLogger(name) for name in ("selador", "selador.agents.orchestrator", "strands")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    with use_dependencies(deps):
        yield client
    for lg, level in zip(quiet, levels, strict=True):
        lg.setLevel(level)


class _Context:
    """What Lambda always passes (``inject_lambda_context`` reads these; the routes, the clock)."""

    function_name = "MainLambda"
    memory_limit_in_mb = "1024"
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:MainLambda"
    aws_request_id = "fuzz-request"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def call(event: Any) -> dict[str, Any]:
    """Run the handler and check the response invariants."""
    response = lambda_handler(event, _Context())
    assert isinstance(response, dict), response
    assert type(response.get("statusCode")) is int, response
    if response.get("body") is not None:
        assert isinstance(response["body"], str), response
        assert "Traceback" not in response["body"]
    return response


def check_frames(client: RecordingClient) -> dict[str, list[dict[str, Any]]]:
    """Check every posted frame; return them per connection, decoded."""
    decoded: dict[str, list[dict[str, Any]]] = {}
    for connection_id, posts in client.posts.items():
        frames = []
        for data in posts:
            text = data.decode("utf-8")
            assert "Traceback" not in text
            parse_frame(text)  # raises on anything that is not a protocol frame
            frames.append(json.loads(text))
        decoded[connection_id] = frames
    return decoded


def check_query(frames: list[dict[str, Any]]) -> None:
    """A query's frames: one request id, ``seq`` 1..n, exactly one terminal frame and it is last."""
    sequenced = [f for f in frames if "seq" in f]
    if not sequenced:
        return
    assert len({f.get("request_id") for f in sequenced}) == 1, sequenced
    assert [f["seq"] for f in sequenced] == list(range(1, len(sequenced) + 1)), sequenced
    terminals = [f for f in sequenced if f["type"] in TERMINAL_TYPES]
    assert len(terminals) == 1 and terminals[0] is sequenced[-1], sequenced


# ---------------------------------------------------------------------------------- strategies

# Text that stresses decoding: control characters, surrogates are impossible in JSON text from
# str, but lone escapes (``"\ud800"``) are not, so they come in through ``json_escapes``.
any_text = st.text(st.characters(codec="utf-8"), max_size=200) | st.text(
    st.sampled_from(string.whitespace + "\x00\x01\x1b\x7f\u2028\u200b\ufeff"), max_size=20
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text, children, max_size=5),
    max_leaves=25,
)
json_escapes = st.sampled_from(['"\\ud800"', '"\\u0000"', '"\\udfff\\ud800"', "NaN", "-Infinity", "1e999"])


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    """Nesting far past ``json``'s recursion limit, or just under it, arrays or objects."""
    depth = draw(st.sampled_from([10, 500, 990, 5_000, 100_000]))
    if draw(st.booleans()):
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@st.composite
def huge_json(draw: st.DrawFn) -> str:
    """Bodies near API Gateway's 128 KiB (the handler must not care how big a value is)."""
    size = draw(st.sampled_from([4_001, 60_000, 131_073]))
    field = draw(st.sampled_from(["question", "context", "request_id", "query_type", "action", "x"]))
    return json.dumps({"action": draw(st.sampled_from(["invoke", "ping", "chat"])), field: "q" * size})


fields_of_any_type = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(
            ["invoke", "resume", "cancel", "ping", "$default", "$connect", "", "INVOKE"]
        )
        | json_values,
        "question": json_values,
        "context": json_values,
        "query_type": st.sampled_from(QUERY_TYPES) | json_values,
        "request_id": st.sampled_from(["q-1", "", "x" * 65, "a\nb", "a\u0000b", "é"]) | json_values,
        "after_seq": st.sampled_from([0, 3, -1, 10**12, 1.5, True]) | json_values,
        "run_token": st.sampled_from(["rt1.a.b", "rt1..", "x" * 200, ""]) | json_values,
        "on_disconnect": st.sampled_from(["continue", "cancel", "CANCEL"]) | json_values,
        "extra": json_values,
    },
)
bodies: st.SearchStrategy[str | bytes] = st.one_of(
    any_text,
    st.binary(max_size=200),
    json_values.map(json.dumps),
    fields_of_any_type.map(json.dumps),
    fields_of_any_type.map(lambda d: json.dumps(d).encode()),  # a binary frame holding JSON
    json_escapes,
    deep_json(),
    huge_json(),
)


def invalid_question(value: object) -> bool:
    """Whether ``value`` fails validation as a question (so the agent never runs).

    Lone surrogates (``"\\ud800"`` in JSON) are refused by pydantic as not valid unicode.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > 4000:
        return True
    return any("\ud800" <= ch <= "\udfff" for ch in value)


def assume_cheap(body: str | bytes | None) -> None:
    """Skip bodies whose question would validate: they run the real agent (the expensive test)."""
    if body is None:
        return
    payload: Any = None
    with contextlib.suppress(ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        payload = json.loads(body)
    if isinstance(payload, dict):
        assume(invalid_question(payload.get("question")))


# ---------------------------------------------------------------------------------- (a) bodies


@FUZZ
@given(body=bodies, route=st.sampled_from(["invoke", "resume", "cancel", "ping", "$default"]))
@example(body="[" * 100_000, route="$default")
@example(body=b"\xff\xfe", route="invoke")
@example(body='{"action": "invoke", "question": "\\ud800"}', route="invoke")
def test_message_bodies_never_crash(recorder: RecordingClient, body: str | bytes, route: str) -> None:
    """Any body on any route: a clean 200 and protocol frames only; the agent never runs here."""
    if route == "invoke":
        assume_cheap(body)
    recorder.clear()
    event = message_event(body, route_key=route)
    response = call(event)
    assert response["statusCode"] == 200

    frames = check_frames(recorder)
    posted = frames.get(event["requestContext"]["connectionId"], [])
    # Every route answers exactly one frame to a malformed or cheap message.
    assert len(posted) == 1, posted
    frame = posted[0]
    if route == "ping":
        assert frame["type"] == "pong"
    else:
        assert frame["type"] == "error"
        assert frame["code"] in ("bad_request", "unknown_action", "unknown_run")
        assert "seq" not in frame  # an answer about a message, never a frame of a run
        assert frame["error"] and len(frame["error"]) < 1000


@st.composite
def valid_questions(draw: st.DrawFn) -> dict[str, Any]:
    """Invoke bodies that validate: random question text, sometimes context and a query type."""
    question = draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=300).filter(str.strip))
    body: dict[str, Any] = {"action": "invoke", "question": question}
    if draw(st.booleans()):
        body["context"] = draw(st.text(max_size=200))
    if draw(st.booleans()):
        body["query_type"] = draw(st.sampled_from(QUERY_TYPES))
    if draw(st.booleans()):
        body["request_id"] = draw(
            st.text(st.characters(codec="utf-8", categories=["L", "N", "P"]), min_size=1, max_size=64)
        )
    if draw(st.booleans()):
        body["noise"] = draw(json_values)
    return body


@settings(FUZZ, max_examples=EXPENSIVE_EXAMPLES)
@given(body=valid_questions(), binary=st.booleans())
@example(body={"action": "invoke", "question": "x" * 4000, "context": "\x00" * 4000}, binary=True)
def test_valid_questions_run_to_one_terminal_frame(
    recorder: RecordingClient, body: dict[str, Any], binary: bool
) -> None:
    """EXPENSIVE: each example runs the offline agent end to end (fewer examples)."""
    recorder.clear()
    text = json.dumps(body)
    event = message_event(text.encode() if binary else text, route_key="invoke")
    assert call(event)["statusCode"] == 200
    frames = check_frames(recorder)[event["requestContext"]["connectionId"]]
    check_query(frames)
    assert frames[0]["type"] == "status" and frames[0]["stage"] == "accepted"
    assert frames[-1]["type"] == "result", frames[-1]
    if "request_id" in body:
        assert frames[-1]["request_id"] == body["request_id"]


# ---------------------------------------------------------------------------------- (b) events


# Built once: the event factories draw random ids, which hypothesis forbids inside strategies.
VALID_EVENTS: tuple[dict[str, Any], ...] = (
    connect_event(),
    disconnect_event(),
    message_event(json.dumps({"action": "ping"})),
    message_event('{"action": "invoke", "question": ""}', route_key="invoke"),
    message_event("not json"),
    message_event(b"\x00binary"),
    http_v2_event("GET", "/health"),
    http_v2_event("POST", "/invoke", body="{}", headers={"content-type": "application/json"}),
    rest_v1_event("GET", "/health"),
    rest_v1_event("POST", "/invoke", body="[]", headers={"Content-Type": "application/json"}),
    {"selador_job": {"connection_id": "c", "endpoint": "https://x", "request": {}}},
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into nested dicts (what a mutation may remove or retype)."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(_paths(child, (*prefix, key)))
    return found


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A real API Gateway event with fields removed or replaced by values of random types."""
    event = json.loads(json.dumps(draw(st.sampled_from(VALID_EVENTS))))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(event)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return event


http_methods = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]
) | st.text(string.ascii_letters, min_size=1, max_size=10)
http_paths = st.sampled_from(["/invoke", "/health", "/", "/invoke/", "//invoke", "/x"]) | st.text(
    st.characters(codec="utf-8", exclude_characters="?#"), max_size=60
).map(lambda p: "/" + p)
http_headers = st.dictionaries(
    st.sampled_from(["content-type", "Content-Type", "origin", "accept", "x-forwarded-for"])
    | st.text(string.ascii_letters + "-", min_size=1, max_size=20),
    st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "", "*/*"])
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40),
    max_size=4,
)
http_bodies = st.none() | bodies.map(lambda b: b if isinstance(b, str) else b.decode("latin-1"))


@st.composite
def http_events(draw: st.DrawFn) -> tuple[Any, ...]:
    """HTTP API v2 or REST v1 events with random methods, paths, headers and bodies.

    Drawn as ``("http", factory, method, path, headers, body)`` and built in the test, because the
    factories draw random request ids.
    """
    method, path = draw(http_methods), draw(http_paths)
    headers, body = draw(http_headers), draw(http_bodies)
    if path == "/invoke" and method.upper() == "POST":
        assume_cheap(body)
    factory = draw(st.sampled_from([http_v2_event, rest_v1_event]))
    return ("http", factory, method, path, headers, body)


@FUZZ
@given(
    event=st.one_of(
        json_values,
        st.dictionaries(any_text, json_values, max_size=8),
        mutated_events(),
        http_events(),
    )
)
@example(event={"requestContext": {"eventType": "MESSAGE", "connectionId": "c", "routeKey": ["x"]}})
@example(event={"version": "2.0", "requestContext": {"http": {}}})
@example(event={"httpMethod": "POST", "requestContext": {}, "path": "/invoke", "headers": None})
@example(event={"selador_job": {"connection_id": 1}})
def test_whole_events_never_crash(recorder: RecordingClient, event: Any) -> None:
    """Any JSON value as the event: a proxy response, never an exception; frames stay valid."""
    if isinstance(event, tuple):
        _, factory, method, path, headers, body = event
        event = factory(method, path, body=body, headers=headers)
    ctx = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(ctx, dict) and ctx.get("routeKey") == "invoke" and isinstance(event.get("body"), str):
        body = event["body"]
        if event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(body, validate=True).decode("utf-8", "replace")
            except ValueError:
                body = ""
        assume_cheap(body)
    recorder.clear()
    response = call(event)
    if isinstance(event, dict) and "statusCode" in response and response["statusCode"] >= 500:
        # A clean 500 is the last line of defence; it must not leak anything either.
        assert response.get("body") in (None, '{"error": "internal error"}') or "internal" in response["body"]
    for frames in check_frames(recorder).values():
        check_query(frames)


def test_unhashable_event_type_is_a_clean_400(recorder: RecordingClient) -> None:
    """Found by the fuzzer: ``{"requestContext": {"eventType": []}}`` raises TypeError."""
    for ctx in ({"eventType": [], "connectionId": "c"}, {"eventType": "MESSAGE", "connectionId": ["c"]}):
        response = call({"requestContext": ctx})
        assert response["statusCode"] == 400
