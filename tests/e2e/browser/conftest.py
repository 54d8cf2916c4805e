"""Browser fixtures: Debian's ``chromium`` driven by Playwright, against a real ``selador serve``.

Playwright cannot download its own browsers on these machines, so it launches the system's
``chromium`` (``make test`` installs it, see the Makefile's ``browser`` target). One browser and
one gateway per module keep the tests quick; every test gets a fresh page (its own context, so
nothing carries over) that fails the test if the page logs an error or throws.

Screenshots go to ``test-artifacts/`` at the repository root (gitignored); their paths are
printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import REPO, SLOW_STREAM, WAIT, GatewayProcess, start_gateway
from selador.local.playground import CLIENT_PATH

_PLAYWRIGHT_MISSING = "Playwright is in the dev extra: make install (or make test) installs it"
if os.environ.get("SELADOR_REQUIRE_BROWSER") == "1":
    # Under make test a missing Playwright is a failure, like a missing chromium, never a skip.
    try:
        import playwright.sync_api as playwright_api
    except ImportError as exc:
        raise ImportError(_PLAYWRIGHT_MISSING) from exc
else:
    playwright_api = pytest.importorskip("playwright.sync_api", reason=_PLAYWRIGHT_MISSING)
Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
FAST_STREAM = (
    # For modules that never act mid-answer: answers stream quickly, still in several deltas.
    "--env",
    "LOCAL_MODEL_TOKEN_DELAY_MS=1",
    "--env",
    "STREAM_FLUSH_MS=10",
    "--env",
    "STREAM_FLUSH_MAX_MS=40",
)
WAIT_MS = WAIT * 1000
# Upper bounds on every wait (never an expectation about speed): a first answer includes the
# worker processes' cold start.
expect.set_options(timeout=WAIT_MS)
_saved: list[Path] = []


def chromium_path() -> str:
    """The system chromium, or a skip (a failure under ``make test``) saying how to install it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    reason = "Debian's chromium is not installed: `make test` installs it (apt-get install -y chromium)"
    if os.environ.get("SELADOR_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium for the module."""
    executable = chromium_path()
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def playground_gateway(request: pytest.FixtureRequest) -> Iterator[GatewayProcess]:
    """The template's gateway, real handler: the module's ``GATEWAY_ARGS``, else :data:`SLOW_STREAM`."""
    with start_gateway(*getattr(request.module, "GATEWAY_ARGS", SLOW_STREAM)) as gateway:
        yield gateway


@pytest.fixture
def page_errors() -> list[str]:
    """What the page logged as errors or threw; a test that expects one removes it."""
    return []


@pytest.fixture
def page(browser: Browser, playground_gateway: GatewayProcess, page_errors: list[str]) -> Iterator[Page]:
    """The playground, loaded and ready, in a fresh context; page errors fail the test."""
    if not CLIENT_PATH.is_file():
        pytest.fail(f"the playground needs the JavaScript client library at {CLIENT_PATH}")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    problems = page_errors
    opened.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    opened.on(
        "console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
    )
    opened.goto(playground_gateway.endpoints.base + "/")
    expect(opened.locator("body")).to_have_attribute("data-ready", "true")
    yield opened
    context.close()
    assert problems == [], "the page reported errors"


def save_screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under ``test-artifacts/``; its path is printed at the end of the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    _saved.append(path)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the screenshots are."""
    for path in _saved:
        terminalreporter.write_line(f"browser screenshot: {path}")


# ---------------------------------------------------------------------------------- page helpers


def ask(page: Page, question: str, query_type: str = "general", context: str = "") -> Any:
    """Type a question into the form and press Ask; returns the question's card (an article)."""
    page.get_by_label("Question").fill(question)
    page.get_by_label("Context").fill(context)
    page.get_by_label("Query type").select_option(query_type)
    page.get_by_role("button", name="Ask").click()
    card = page.get_by_role("article", name=question)
    expect(card).to_have_count(1)
    return card


def request_id(card: Any) -> str:
    """The request_id of a card's run."""
    rid = card.get_attribute("data-request-id")
    assert rid, "the card names its request_id"
    return rid


def logged(page: Page, rid: str) -> list[dict[str, Any]]:
    """Every frame inspector entry of ``rid`` in arrival order: direction, seq, duplicate, raw JSON."""
    entries = page.locator(f'#frames li[data-request-id="{rid}"]').evaluate_all(
        """items => items.map(li => ({
            direction: li.dataset.direction,
            type: li.dataset.type,
            seq: li.dataset.seq === "" ? null : Number(li.dataset.seq),
            duplicate: li.dataset.duplicate === "true",
            raw: li.querySelector("pre.raw").textContent,
        }))"""
    )
    for entry in entries:
        entry["raw"] = json.loads(entry["raw"])
    return entries


def wait_for_delta(page: Page, rid: str) -> None:
    """Wait until the inspector shows a delta of ``rid`` (the answer is streaming)."""
    expect(page.locator(f'#frames li[data-request-id="{rid}"][data-type="delta"]').first).to_be_attached()


def result_frame(page: Page, rid: str) -> dict[str, Any]:
    """The ``result`` frame of ``rid`` as the inspector logged it (first arrival)."""
    results = [e["raw"] for e in logged(page, rid) if e["direction"] == "in" and e["type"] == "result"]
    assert results, f"no result frame for {rid}"
    return results[0]


def streamed_text(card: Any) -> str:
    """The card's concatenated deltas, as the client delivered them (in seq order, each seq once)."""
    return card.locator("pre.streamed").text_content() or ""
