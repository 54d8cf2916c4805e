"""Log hygiene: tokens and Authorization headers never reach a log line; questions only at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from selador.handler import lambda_handler
from selador.local.events import connect_event, http_v2_event, message_event, new_connection_id
from selador.observability import logger
from selador.redaction import REDACTED, redact, redact_text

from .conftest import AUDIENCE, ISSUER, SECRET, hs256_token, recording_handler

QUESTION = "What is the FAR in the LR2 zone for lot 7 on Elm Street?"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the package logger writes, at DEBUG."""
    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous_stream, previous_level = handler.stream, logger.log_level
    handler.setStream(stream)
    logger.setLevel("DEBUG")
    try:
        yield stream
    finally:
        handler.setStream(previous_stream)
        logger.setLevel(previous_level)


def test_redact_text() -> None:
    token = hs256_token()
    assert token not in redact_text(f"wss://x/production?token={token}&tag=a")
    assert redact_text("GET /p?tag=1&token=opaque-value#frag") == f"GET /p?tag=1&token={REDACTED}#frag"
    assert redact_text("id_token=abc&access_token=def") == f"id_token={REDACTED}&access_token={REDACTED}"
    assert redact_text("Authorization: Bearer abcdefgh12345") == f"Authorization: Bearer {REDACTED}"
    assert redact_text(f"bad token {token} here") == f"bad token {REDACTED} here"
    # Prose is left alone.
    assert (
        redact_text("the bearer of good news; eyJ is a prefix") == "the bearer of good news; eyJ is a prefix"
    )


def test_redact_structure_masks_credential_keys_at_any_depth() -> None:
    event = connect_event(
        headers={"Authorization": "Bearer opaque-credential", "Cookie": "sid=1"},
        query={"token": "opaque-query-token", "tag": "keep"},
    )
    cleaned = redact({"event": event, "list": [{"x-api-key": "k"}]})
    assert cleaned["event"]["headers"]["Authorization"] == REDACTED
    assert cleaned["event"]["headers"]["Cookie"] == REDACTED
    assert cleaned["event"]["multiValueHeaders"]["Authorization"] == REDACTED
    assert cleaned["event"]["queryStringParameters"] == {"token": REDACTED, "tag": "keep"}
    assert cleaned["list"] == [{"x-api-key": REDACTED}]
    assert event["headers"]["Authorization"] == "Bearer opaque-credential", "the input is untouched"


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "exception"])
def test_no_level_leaks_a_token(logs: io.StringIO, level: str) -> None:
    token = hs256_token()
    event = connect_event(headers={"authorization": f"Bearer {token}"}, query={"token": token})
    try:
        raise ValueError(f"could not verify {token}")
    except ValueError:
        getattr(logger, level)(
            "handshake %s from wss://h/production?token=%s",
            token,
            token,
            extra={"event": event, "auth_header": f"Bearer {token}", "raw_token": token},
        )
    logger.append_keys(leaky=token)
    try:
        logger.info("appended keys are redacted too")
    finally:
        logger.remove_keys(["leaky"])
    # Standard-library loggers under selador.* propagate to the same formatter.
    logging.getLogger("selador.agents.orchestrator").warning("url ?token=%s", token)
    text = logs.getvalue()
    assert text.count("\n") >= 3
    assert token not in text
    assert token.split(".")[1] not in text, "not even the payload"
    assert REDACTED in text
    for line in text.splitlines():
        json.loads(line)  # still one JSON object a line


def test_handler_logs_no_token_on_refused_or_accepted_connect(
    logs: io.StringIO, monkeypatch: pytest.MonkeyPatch, context
) -> None:
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_HS256_SECRET", SECRET)
    monkeypatch.setenv("AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("AUTH_AUDIENCE", AUDIENCE)
    good, expired = hs256_token(sub="alice"), hs256_token(exp=1)
    bad_sig = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    with recording_handler():
        _connect_everywhere(context, (good, expired, bad_sig))
    text = logs.getvalue()
    assert "connection refused" in text and '"principal":"alice"' in text
    for token in (good, expired, bad_sig):
        assert token not in text
        assert token.split(".")[2][:20] not in text
    assert SECRET not in text


def _connect_everywhere(context, tokens) -> None:
    for token in tokens:
        lambda_handler(connect_event(query={"token": token}), context)
        lambda_handler(connect_event(headers={"Authorization": f"Bearer {token}"}), context)
        lambda_handler(
            http_v2_event(
                "POST",
                "/invoke",
                body="{}",
                headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
            ),
            context,
        )


def test_question_text_only_at_debug(logs: io.StringIO, context) -> None:
    conn = new_connection_id()
    body = json.dumps({"action": "invoke", "question": QUESTION, "query_type": "zoning"})
    with recording_handler() as client:
        logger.setLevel("INFO")
        lambda_handler(message_event(body, connection_id=conn), context)
        response = lambda_handler(
            http_v2_event(
                "POST",
                "/invoke",
                body=json.dumps({"question": QUESTION}),
                headers={"content-type": "application/json"},
            ),
            context,
        )
        assert response["statusCode"] == 200
        assert client.posts[conn][-1]["type"] == "result"
        assert "query finished" in logs.getvalue(), "the runs logged at INFO"
        assert "Elm Street" not in logs.getvalue()
        logger.setLevel("DEBUG")
        lambda_handler(message_event(body, connection_id=conn), context)
    assert "Elm Street" in logs.getvalue()
