"""The playground's runs in headless chromium: Stop, dropped connections, several at once, a conversation.

Drops happen while an answer streams (the gateway streams slowly, see ``SLOW_STREAM``): one from
the server's side (``DELETE @connections/{id}``, as API Gateway's DeleteConnection or a network
loss looks to a browser), one from the page's "Drop connection" button. Either way the client
reconnects, resumes, and the answer must complete with every ``seq`` exactly once.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from e2e.conftest import WAIT, GatewayProcess

from .conftest import (
    Page,
    ask,
    expect,
    logged,
    request_id,
    result_frame,
    save_screenshot,
    streamed_text,
    wait_for_delta,
)

pytestmark = pytest.mark.e2e

ZONING = ("What are the zoning requirements for residential development?", "zoning")
FINANCING = ("What is the monthly payment on a $500,000 house with 20% down at 6.5% interest?", "financing")
PERMITS = ("What permits do I need to build a deck in Seattle?", "permits")


def assert_complete_without_gaps_or_repeats(page: Page, card: Any) -> dict[str, Any]:
    """Every seq of the run delivered once (repeats only marked as such); the answer is the result's."""
    rid = request_id(card)
    received = [e for e in logged(page, rid) if e["direction"] == "in" and e["seq"] is not None]
    firsts = [e["seq"] for e in received if not e["duplicate"]]
    result = result_frame(page, rid)
    assert sorted(firsts) == list(range(1, result["seq"] + 1)), f"gaps or unmarked repeats: {firsts}"
    repeats = [e["seq"] for e in received if e["duplicate"]]
    assert set(repeats) <= set(firsts)
    assert streamed_text(card) == result["data"]["content"]
    expect(card.get_by_role("alert")).to_be_hidden()  # no "streamed text differs" notice
    return result


def sent(page: Page, rid: str, action: str) -> list[dict[str, Any]]:
    """The messages the page sent for ``rid`` with ``action``."""
    return [e["raw"] for e in logged(page, rid) if e["direction"] == "out" and e["type"] == action]


def test_stop_ends_a_running_answer(page: Page) -> None:
    card = ask(page, *ZONING)
    rid = request_id(card)
    wait_for_delta(page, rid)
    card.get_by_role("button", name="Stop").click()
    expect(card).to_have_attribute("data-state", "cancelled")
    expect(card.get_by_role("status")).to_have_text("Stopped")
    result = assert_complete_without_gaps_or_repeats(page, card)
    assert result["data"]["stop_reason"] == "cancelled" and result["data"]["success"] is False
    (cancel,) = sent(page, rid, "cancel")
    accepted = next(e["raw"] for e in logged(page, rid) if e["direction"] == "in" and e["seq"] == 1)
    assert cancel["run_token"] == accepted["run_token"]
    expect(card.get_by_role("region", name="Result details")).to_contain_text("Stop reasoncancelled")
    expect(card.get_by_role("button", name="Stop")).to_be_disabled()


def test_a_connection_dropped_by_the_server_is_resumed_and_the_answer_completes(
    page: Page, playground_gateway: GatewayProcess
) -> None:
    tag = "browser-server-drop"
    page.get_by_label("WebSocket URL").fill(f"{playground_gateway.endpoints.ws_url}?tag={tag}")
    card = ask(page, *ZONING)
    rid = request_id(card)
    wait_for_delta(page, rid)
    (connection,) = [
        c
        for c in playground_gateway.stats()["connections"]
        if c["query"].get("tag") == tag and c["state"] == "open"
    ]
    url = f"{playground_gateway.endpoints.management_endpoint}/@connections/{connection['connectionId']}"
    assert httpx.delete(url, timeout=WAIT).status_code == 204

    expect(card).to_have_attribute("data-state", "succeeded")
    result = assert_complete_without_gaps_or_repeats(page, card)
    resumes = sent(page, rid, "resume")
    assert resumes, "the client resumed the run"
    assert resumes[0]["after_seq"] < result["seq"], "the drop landed before the answer was complete"
    steps = card.get_by_role("list", name="Progress").inner_text()
    assert "Connection lost; reconnecting" in steps
    assert f"Resuming after seq {resumes[0]['after_seq']}" in steps
    expect(page.get_by_role("status").first).to_have_text(
        f"Connected to {playground_gateway.endpoints.ws_url}?tag={tag}"
    )
    tagged = [c for c in playground_gateway.stats()["connections"] if c["query"].get("tag") == tag]
    assert sorted(c["state"] for c in tagged) == ["closed", "open"], "one drop, one new connection"
    print(f"screenshot: {save_screenshot(page, 'playground-resumed.png')}")


def test_the_drop_connection_button_reconnects_and_resumes(page: Page) -> None:
    card = ask(page, *FINANCING)
    rid = request_id(card)
    wait_for_delta(page, rid)
    page.get_by_role("button", name="Drop connection").click()
    expect(card).to_have_attribute("data-state", "succeeded")
    result = assert_complete_without_gaps_or_repeats(page, card)
    resumes = sent(page, rid, "resume")
    assert resumes and resumes[0]["after_seq"] < result["seq"]
    assert "Connection lost; reconnecting" in card.get_by_role("list", name="Progress").inner_text()
    expect(page.get_by_role("button", name="Drop connection")).to_be_enabled()  # connected again


def test_several_questions_run_at_once_each_in_its_own_card(page: Page) -> None:
    cards = [ask(page, question, query_type) for question, query_type in (ZONING, FINANCING, PERMITS)]
    running = page.locator('article[data-state="running"]')
    expect(running).not_to_have_count(0)  # a later question was asked before an earlier one ended
    for card in cards:
        expect(card).to_have_attribute("data-state", "succeeded")
        assert_complete_without_gaps_or_repeats(page, card)
    assert len({request_id(card) for card in cards}) == 3


def test_a_conversation_follow_up_continues_the_session(page: Page) -> None:
    page.get_by_role("checkbox", name="Conversation").check()
    first = ask(page, "What is the FAR in LR2?", "zoning")
    expect(first).to_have_attribute("data-state", "succeeded")
    session_id = result_frame(page, request_id(first))["data"]["session_id"]
    thread = page.get_by_role("region", name="Conversation")
    expect(thread.get_by_role("heading", level=3).first).to_have_text(f"Conversation {session_id}")

    follow_up = ask(page, "And in LR3?", "zoning")
    expect(follow_up).to_have_attribute("data-state", "succeeded")
    (first_invoke,) = sent(page, request_id(first), "invoke")
    (invoke,) = sent(page, request_id(follow_up), "invoke")
    assert first_invoke["session_id"] == "new"
    assert invoke["session_id"] == session_id and invoke["session_token"].startswith("st1.")
    assert result_frame(page, request_id(follow_up))["data"]["session_id"] == session_id
    expect(thread.get_by_role("article")).to_have_count(2)
    expect(follow_up).to_contain_text(f"session {session_id}, turn 2")
    expect(follow_up.get_by_role("region", name="Answer")).to_contain_text("LR3")

    # A new conversation starts a new thread with a new session.
    page.get_by_role("button", name="New conversation").click()
    fresh = ask(page, "What is the FAR in NC2?", "zoning")
    expect(fresh).to_have_attribute("data-state", "succeeded")
    assert sent(page, request_id(fresh), "invoke")[0]["session_id"] == "new"
    expect(page.get_by_role("region", name="Conversation")).to_have_count(2)


def test_a_refused_question_shows_the_servers_reason(page: Page) -> None:
    # One question at a time per session: a follow-up while the first still runs is refused
    # with session_busy (an error without seq), shown on its card.
    page.get_by_role("checkbox", name="Conversation").check()
    first = ask(page, *ZONING)
    wait_for_delta(page, request_id(first))  # accepted, so the session is known; still running
    second = ask(page, *PERMITS)
    expect(second).to_have_attribute("data-state", "failed")
    expect(second.get_by_role("alert")).to_contain_text("session_busy: ")
    expect(second.get_by_role("status")).to_have_text("Failed")
    refusal = [e for e in logged(page, request_id(second)) if e["direction"] == "in"]
    assert [(e["type"], e["seq"], e["raw"]["code"]) for e in refusal] == [("error", None, "session_busy")]
    expect(first).to_have_attribute("data-state", "succeeded")
