"""The playground against a gateway with ``AUTH_MODE=jwt``: the token field is what lets it in."""

from __future__ import annotations

import pytest

from e2e.conftest import signed_token

from .conftest import FAST_STREAM, Page, ask, expect

pytestmark = pytest.mark.e2e

SECRET = "browser-playground-secret-0123456789abcdef"
GATEWAY_ARGS = (*FAST_STREAM, "--env", "AUTH_MODE=jwt", "--env", f"AUTH_HS256_SECRET={SECRET}")


def user_token(sub: str) -> str:
    """A JWT for ``sub`` signed with :data:`SECRET`."""
    return signed_token(sub, SECRET)


def test_without_a_token_the_page_says_it_cannot_connect_and_with_one_it_answers(
    page: Page, page_errors: list[str]
) -> None:
    page.get_by_label("Question").fill("What is the FAR in LR2?")
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_role("alert")).to_contain_text("Could not connect:")
    expect(page.get_by_role("article")).to_have_count(0)

    page.get_by_label("Token").fill(user_token("browser-user"))
    card = ask(page, "What is the FAR in LR2?", "zoning")
    expect(card).to_have_attribute("data-state", "succeeded")
    expect(page.get_by_role("alert")).to_be_hidden()  # the earlier error is gone
    # Chromium logs the refused handshake (401) itself; that one is expected here.
    page_errors[:] = [e for e in page_errors if "WebSocket connection to" not in e]
