// One question and its run: a card with the status timeline, the answer streaming in as Markdown,
// the sources its citations link to, the result's metadata and a Stop button.

import { h, seconds } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const STATES = { running: "Running", succeeded: "Answered", cancelled: "Stopped", failed: "Failed" };

export class RunCard {
  /**
   * @param {{question: string, context?: string, queryType: string, requestId: string,
   *          turn?: number, onStop: () => Promise<unknown>}} ask
   */
  constructor({ question, context, queryType, requestId, turn, onStop }) {
    this.requestId = requestId;
    this.id = `run-${requestId.replace(/[^\w-]/g, "_")}`;
    this.started = performance.now();
    this.text = "";
    this.sources = [];
    this.frames = 0;
    this.lastSeq = 0;
    this.streaming = false;
    this.pendingRender = false;
    this.onStop = onStop;
    this.invoked = false; // set when the page sees its first invoke go out

    this.badge = h("span", { class: "badge", role: "status", text: STATES.running });
    this.stopButton = h("button", { type: "button", class: "stop", text: "Stop" });
    this.stopButton.addEventListener("click", () => this.stop());
    this.meta = h("p", { class: "meta" });
    this.timeline = h("ol", { class: "timeline", "aria-label": "Progress" });
    this.answer = h("div", { class: "markdown" });
    this.answer.addEventListener("click", (event) => {
      // A citation takes the keyboard focus to its source, not only the scroll position.
      const citation = event.target.closest("a.cite");
      const source = citation && document.getElementById(citation.hash.slice(1));
      if (!source) return;
      event.preventDefault();
      source.focus();
      source.scrollIntoView({ block: "nearest" });
    });
    this.answerRegion = h(
      "section",
      { class: "answer", "aria-label": "Answer", "aria-busy": "true" },
      this.answer,
    );
    this.notice = h("p", { class: "notice", role: "alert", hidden: true });
    this.sourceList = h("ol", { class: "source-list" });
    this.sourcesRegion = h(
      "section",
      { class: "sources", "aria-label": "Sources", hidden: true },
      h("h4", { text: "Sources" }),
      this.sourceList,
    );
    this.details = h("dl", {});
    this.detailsRegion = h(
      "section",
      { class: "details", "aria-label": "Result details", hidden: true },
      h("h4", { text: "Details" }),
      this.details,
    );
    this.rawText = h("pre", { class: "streamed" });
    this.element = h(
      "article",
      { class: "run", id: this.id, "aria-labelledby": `${this.id}-q`, "data-request-id": requestId, "data-state": "running" },
      h(
        "header",
        {},
        h("h3", { id: `${this.id}-q`, text: question }),
        this.stopButton,
      ),
      this.meta,
      context ? h("p", { class: "context", text: `Context: ${context}` }) : null,
      this.timeline,
      this.answerRegion,
      this.notice,
      this.sourcesRegion,
      this.detailsRegion,
      h("details", { class: "streamed-text" }, h("summary", { text: "Streamed text (deltas in seq order)" }), this.rawText),
    );
    this.metaParts = { queryType, requestId, turn };
    this.renderMeta();
    this.step("sent", "Question sent");
  }

  renderMeta() {
    const { queryType, requestId, turn, sessionId } = this.metaParts;
    const parts = [queryType, requestId];
    if (sessionId) parts.push(`session ${sessionId}${turn ? `, turn ${turn}` : ""}`);
    this.meta.replaceChildren(this.badge, ` ${parts.join(" · ")}`);
  }

  /** The session this run belongs to, once the accepted frame named it. */
  session(sessionId) {
    if (sessionId && sessionId !== this.metaParts.sessionId) {
      this.metaParts.sessionId = sessionId;
      this.renderMeta();
    }
  }

  step(kind, text) {
    const elapsed = seconds(performance.now() - this.started);
    this.timeline.append(h("li", { "data-kind": kind }, h("time", { text: `+${elapsed}` }), ` ${text}`));
  }

  /** A frame of this run, in seq order, each seq once (the client library's iteration). */
  frame(frame) {
    this.frames += 1;
    if (Number.isInteger(frame.seq)) this.lastSeq = frame.seq;
    if (frame.session_id) this.session(frame.session_id);
    if (frame.type === "status") {
      if (frame.stage === "accepted") this.step("accepted", "Accepted");
      else if (frame.stage === "routed") this.step("routed", `Routed to the ${frame.agent ?? "?"} agent`);
      else if (frame.stage === "tool") this.step("tool", `Tool ${frame.tool ?? "?"} (step ${frame.step ?? "?"})`);
      else if (frame.stage === "composing") this.step("composing", "Composing the answer");
      else this.step("status", frame.message ?? String(frame.stage));
    } else if (frame.type === "delta") {
      if (!this.streaming) {
        this.streaming = true;
        this.step("streaming", "Answer streaming in");
      }
      this.text += frame.content ?? "";
      this.scheduleRender();
    }
  }

  scheduleRender() {
    if (this.pendingRender) return;
    this.pendingRender = true;
    // One render per animation frame however many deltas arrive; a hidden tab renders at the end.
    requestAnimationFrame(() => {
      this.pendingRender = false;
      this.render(this.text);
    });
  }

  render(text) {
    const known = this.sources.length;
    this.answer.innerHTML = renderMarkdown(text, {
      citationHref: (n) => (n >= 1 && n <= known ? `#${this.id}-source-${n}` : null),
    });
    this.rawText.textContent = this.text;
  }

  connectionLost() {
    this.step("connection", "Connection lost; reconnecting");
  }

  reconnected() {
    this.step("connection", "Reconnected");
  }

  resuming(afterSeq) {
    this.step("resume", `Resuming after seq ${afterSeq}`);
  }

  reinvoked() {
    this.step("resume", "Asking again (the question was not accepted before the drop)");
  }

  async stop() {
    this.stopButton.disabled = true;
    this.step("stop", "Stop requested");
    try {
      await this.onStop();
    } catch (error) {
      this.showNotice(`Stop failed: ${error?.message ?? error}`);
    }
  }

  /** The result frame's data. */
  finish(data) {
    const cancelled = data?.stop_reason === "cancelled" || data?.success === false;
    const content = typeof data?.content === "string" ? data.content : "";
    this.sources = Array.isArray(data?.sources) ? data.sources : [];
    if (data?.content_truncated) {
      this.showNotice(`The result's content is cut at ${content.length} of ${data.content_length} characters; the answer shown is the streamed text.`);
    } else if (content !== this.text) {
      this.showNotice("The streamed text differs from the result's content (a missing or repeated delta?); showing the result's content.");
      this.element.dataset.consistent = "false";
    }
    this.render(data?.content_truncated ? this.text : content);
    this.renderSources(content);
    this.renderDetails(data ?? {});
    this.end(cancelled ? "cancelled" : "succeeded", cancelled ? "Stopped (cancelled)" : `Done (${data?.stop_reason ?? "end"})`);
  }

  /** A SeladorError (error frame, or a refusal of the question) or any other failure. */
  fail(error) {
    const code = error?.code ? `${error.code}: ` : "";
    this.showNotice(`${code}${error?.message ?? error}`);
    this.render(this.text);
    this.end("failed", `Failed${error?.code ? ` (${error.code})` : ""}`);
  }

  end(state, text) {
    if (this.element.dataset.state !== "running") return;
    this.step(state === "failed" ? "error" : "result", text);
    this.element.dataset.state = state;
    this.badge.textContent = STATES[state];
    this.answerRegion.setAttribute("aria-busy", "false");
    this.stopButton.disabled = true;
  }

  showNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
  }

  renderSources(content) {
    if (!this.sources.length) return;
    const cited = new Set(Array.from(content.matchAll(/\[(\d{1,3})\]/g), (m) => Number(m[1])));
    this.sourceList.replaceChildren(
      ...this.sources.map((source, index) => {
        const n = index + 1;
        const location = String(source?.location ?? "");
        const where = /^https?:\/\//i.test(location)
          ? h("a", { href: location, rel: "noopener noreferrer", target: "_blank", text: location })
          : h("span", { text: location });
        return h(
          "li",
          { id: `${this.id}-source-${n}`, tabindex: "-1", class: cited.has(n) ? "cited" : "uncited" },
          h("span", { class: "title", text: String(source?.title ?? "(untitled)") }),
          source?.section ? ` — ${source.section}` : null,
          cited.has(n) ? null : h("span", { class: "note", text: "(not cited)" }),
          location ? h("span", { class: "where" }, where) : null,
        );
      }),
    );
    this.sourcesRegion.hidden = false;
  }

  renderDetails(data) {
    const usage = data.usage ?? {};
    const calls = Object.entries(data.tool_calls ?? {})
      .map(([tool, count]) => `${tool} ×${count}`)
      .join(", ");
    const rows = [
      ["Agent", data.agent],
      ["Tools", data.tools_used !== undefined ? `${data.tools_used} used of ${data.tools_available ?? "?"} available` : null],
      ["Tool calls", calls || null],
      ["Tokens", usage.total_tokens !== undefined ? `${usage.input_tokens ?? "?"} in, ${usage.output_tokens ?? "?"} out, ${usage.total_tokens} total` : null],
      ["Duration", Number.isFinite(data.duration_ms) ? seconds(data.duration_ms) : null],
      ["Stop reason", data.stop_reason],
      ["Model", data.model],
      ["Session", data.session_id],
      ["Frames", `${this.frames} (last seq ${this.lastSeq})`],
    ];
    this.details.replaceChildren(
      ...rows.filter(([, value]) => value !== null && value !== undefined && value !== "").flatMap(([name, value]) => [
        h("dt", { text: name }),
        h("dd", { text: String(value) }),
      ]),
    );
    this.detailsRegion.hidden = false;
  }
}
