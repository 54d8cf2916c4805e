"""The playground in headless chromium: the page, an answer, and how it reads and renders.

Controls are found the way people and assistive technology find them: by role and accessible
name (a text field labelled "Question", buttons "Ask", "Stop", "Drop connection", a region
labelled "Answer").
"""

from __future__ import annotations

import re

import httpx
import pytest

from e2e.conftest import WAIT, GatewayProcess

from .conftest import (
    FAST_STREAM,
    Page,
    ask,
    expect,
    logged,
    request_id,
    result_frame,
    save_screenshot,
    streamed_text,
)

pytestmark = pytest.mark.e2e

ZONING = "What are the zoning requirements for residential development?"
GATEWAY_ARGS = FAST_STREAM


def test_the_page_has_its_labelled_controls_and_defaults_to_its_own_gateway(
    page: Page, playground_gateway: GatewayProcess
) -> None:
    expect(page).to_have_title("Selador playground")
    for role, name in (("textbox", "Question"), ("textbox", "Context"), ("combobox", "Query type")):
        expect(page.get_by_role(role, name=name)).to_be_visible()
    expect(page.get_by_role("button", name="Ask")).to_be_enabled()
    expect(page.get_by_role("button", name="Drop connection")).to_be_disabled()  # nothing to drop yet
    expect(page.get_by_role("checkbox", name="Conversation")).not_to_be_checked()
    expect(page.get_by_label("WebSocket URL")).to_have_value(playground_gateway.endpoints.ws_url)
    expect(page.get_by_label("Token")).to_have_attribute("type", "password")
    # The banner prints the page's URL.
    assert f"Playground  {playground_gateway.endpoints.base}/" in playground_gateway.output


def test_an_answer_streams_in_with_its_timeline_sources_and_details(
    page: Page, playground_gateway: GatewayProcess
) -> None:
    card = ask(page, ZONING, "zoning", context="Looking at a property in Capitol Hill area")
    expect(card).to_have_attribute("data-state", "succeeded", timeout=WAIT * 1000)
    rid = request_id(card)
    frames = [e for e in logged(page, rid) if e["direction"] == "in"]
    result = result_frame(page, rid)["data"]

    # Streamed: several deltas arrived before the result, and the card said so in its timeline.
    assert sum(1 for e in frames if e["type"] == "delta") >= 2
    steps = card.get_by_role("list", name="Progress").get_by_role("listitem").all_inner_texts()
    kinds = [re.sub(r"^\+[\d.]+ s\s+", "", step) for step in steps]
    assert kinds[:3] == ["Question sent", "Accepted", "Routed to the rag agent"], kinds
    assert "Tool search_knowledge_base (step 1)" in kinds
    assert kinds.index("Composing the answer") < kinds.index("Answer streaming in") < len(kinds) - 1
    assert kinds[-1] == "Done (end_turn)"

    # The answer: rendered Markdown of exactly the result's content.
    answer = card.get_by_role("region", name="Answer")
    expect(answer).to_have_attribute("aria-busy", "false")
    assert streamed_text(card) == result["content"]
    assert answer.locator("li").count() >= 2, "the answer's bullet list is rendered as a list"
    assert "**" not in answer.inner_text() and "<" not in answer.inner_text()

    # Citations [n] link to the nth source, which shows its title, section and link.
    sources = card.get_by_role("region", name="Sources").get_by_role("listitem")
    expect(sources).to_have_count(len(result["sources"]))
    first = result["sources"][0]
    expect(sources.first).to_contain_text(first["title"])
    expect(sources.first).to_contain_text(first["section"])
    expect(sources.first.get_by_role("link")).to_have_attribute("href", first["location"])
    citation = answer.get_by_role("link", name="source 1").first
    citation.click()
    expect(sources.first).to_be_focused()

    # The result's metadata.
    details = card.get_by_role("region", name="Result details")
    expect(details).to_contain_text(f"Agent{result['agent']}")
    expect(details).to_contain_text(f"{result['tools_used']} used of {result['tools_available']} available")
    expect(details).to_contain_text(f"{result['usage']['total_tokens']} total")
    expect(details).to_contain_text(f"{result['duration_ms'] / 1000:.2f} s")
    expect(card.get_by_role("button", name="Stop")).to_be_disabled()
    print(f"screenshot: {save_screenshot(page, 'playground-answer.png')}")


def test_the_keyboard_alone_asks_a_question(page: Page) -> None:
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the question")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Question")).to_be_focused()
    page.keyboard.type("What permits do I need to build a deck in Seattle?")
    page.keyboard.press("Enter")  # Enter asks (Shift+Enter is a new line)
    card = page.get_by_role("article", name="What permits do I need to build a deck in Seattle?")
    expect(card).to_have_attribute("data-state", "succeeded")
    expect(page.get_by_label("Question")).to_have_value("")  # ready for the next question


def test_a_phone_sized_screen_needs_no_sideways_scrolling(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    card = ask(page, "How much floor area can I build on a 5000 sq ft lot in LR2?", "zoning")
    expect(card).to_have_attribute("data-state", "succeeded")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a 390 px screen"
    for name in ("Ask", "Drop connection"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box is not None and box["height"] >= 40, f"{name} is a comfortable touch target"
    print(f"screenshot: {save_screenshot(page, 'playground-phone.png')}")


# WCAG 2.1 AA: 4.5:1 for text, 3:1 for large text (24 px, or 18.66 px bold). Disabled controls are
# exempt. The background is the nearest ancestor's opaque one.
CONTRAST_PROBLEMS = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const problems = [];
  for (const el of document.querySelectorAll("body *")) {
    const text = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!text || !el.getClientRects().length || el.closest(":disabled")) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden") continue;
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const what = `${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}"`;
    if (ratio < needed) problems.push(`${what} ${ratio.toFixed(2)}`);
  }
  return problems;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_meets_wcag_aa(page: Page, scheme: str) -> None:
    page.emulate_media(color_scheme=scheme)
    card = ask(page, "What is the FAR in LR2?", "zoning")
    expect(card).to_have_attribute("data-state", "succeeded")
    page.locator("#frames details").first.evaluate("d => d.open = true")  # raw JSON shown too
    assert page.evaluate(CONTRAST_PROBLEMS) == []


def test_markdown_is_rendered_without_running_anything_in_the_answer(page: Page) -> None:
    hostile = (
        '# Title\n<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>\n\n'
        "[click](javascript:window.pwned=3) [ok](https://example.com/a?b=1&c=2) **bold** `<b>code</b>`\n"
        '- item [1]\n- "https://example.com/x(y)".'
    )
    rendered = page.evaluate(
        """async (text) => {
            const { renderMarkdown } = await import("/playground/markdown.js");
            const box = document.createElement("div");
            box.innerHTML = renderMarkdown(text, { citationHref: (n) => `#source-${n}` });
            document.body.append(box);
            await new Promise((r) => setTimeout(r, 50));  // an injected onerror would have run
            return {
              tags: Array.from(box.querySelectorAll("*"), (e) => e.tagName.toLowerCase()),
              hrefs: Array.from(box.querySelectorAll("a"), (a) => a.getAttribute("href")),
              text: box.textContent,
              pwned: window.pwned ?? null,
            };
        }""",
        hostile,
    )
    assert rendered["pwned"] is None
    assert set(rendered["tags"]) <= {"h4", "p", "br", "a", "strong", "code", "ul", "li", "span"}
    assert rendered["hrefs"] == ["https://example.com/a?b=1&c=2", "#source-1", "https://example.com/x(y)"]
    assert '<img src=x onerror="window.pwned=1">' in rendered["text"]  # shown as text
    assert "[click](javascript:window.pwned=3)" in rendered["text"]


def test_a_missing_client_library_is_reported_on_the_page(
    page: Page, playground_gateway: GatewayProcess, page_errors: list[str]
) -> None:
    served = httpx.get(playground_gateway.endpoints.base + "/selador.js", timeout=WAIT)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")
    page.route("**/selador.js", lambda route: route.fulfill(status=404, body="not here"))
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text("could not be loaded from /selador.js")
    expect(page.get_by_role("button", name="Ask")).to_be_disabled()
    expect(page.get_by_role("status").first).to_have_text("The client library is missing")
    # Chromium logs the failed load; that one is expected here.
    page_errors[:] = [e for e in page_errors if "404" not in e]


def test_a_bad_url_or_an_unreachable_server_is_explained_not_thrown(
    page: Page, page_errors: list[str]
) -> None:
    page.get_by_label("WebSocket URL").fill("http://127.0.0.1:3001/production")
    ask_button = page.get_by_role("button", name="Ask")
    page.get_by_label("Question").fill("What is the FAR in LR2?")
    ask_button.click()
    expect(page.get_by_role("alert")).to_have_text(
        "Could not connect: the WebSocket URL must start with ws:// or wss://, not http://"
    )
    # Port 9 (discard) has nothing listening here: the handshake fails.
    page.get_by_label("WebSocket URL").fill("ws://127.0.0.1:9/production")
    ask_button.click()
    expect(page.get_by_role("alert")).to_contain_text("Could not connect:")
    expect(page.get_by_role("status").first).to_contain_text("Not connected:")
    expect(page.get_by_role("article")).to_have_count(0)  # nothing was asked
    # Chromium logs the refused WebSocket itself; that one is expected here.
    page_errors[:] = [e for e in page_errors if "WebSocket connection to" not in e]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # A fence with an info string past the language ("title", a dot): still a fence.
        ("```python title=example.py\nprint(1)\n```\nafter", "print(1)"),
        ("~~~ python3.11\nprint(2)\n~~~", "print(2)"),
        # A line that starts like a fence but is not one (inline code at the start of a line).
        ("Run\n```print(3)``` first", None),
        # A line that starts like a heading but does not parse as one (U+2028 inside it).
        ("# a\u2028b\n\ntext", None),
    ],
)
def test_markdown_that_starts_a_block_it_cannot_parse_still_renders(
    page: Page, text: str, code: str | None
) -> None:
    # Every line must be consumed: a line that startsBlock() claims but no block rule takes
    # used to loop forever, pushing empty paragraphs until the tab ran out of memory.
    rendered = page.evaluate(
        """async (text) => {
            const { renderMarkdown } = await import("/playground/markdown.js");
            const box = document.createElement("div");
            box.innerHTML = renderMarkdown(text);
            return { text: box.textContent, code: box.querySelector("pre code")?.textContent ?? null };
        }""",
        text,
    )
    assert rendered["code"] == code
    assert "after" in rendered["text"] or "after" not in text
    assert "text" in rendered["text"] or "\n\ntext" not in text
