// The frame inspector: every frame the server sent (from the client's "frame" event, before
// dedupe, so a frame delivered twice shows twice, marked) and every message the page sent (from
// the socket's send), in arrival order, each with its seq and its raw JSON.

import { clock, h } from "./dom.js";

const MAX_ENTRIES = 5000;

export class FrameInspector {
  /**
   * @param {HTMLOListElement} list Where entries go.
   * @param {HTMLElement} counter Shows how many frames were logged.
   */
  constructor(list, counter) {
    this.list = list;
    this.counter = counter;
    this.seen = new Set();
    this.total = 0;
  }

  /** Log a frame received from the server (any object, even one without type or seq). */
  received(frame) {
    const rid = typeof frame?.request_id === "string" ? frame.request_id : "";
    const seq = Number.isInteger(frame?.seq) ? frame.seq : null;
    let duplicate = false;
    if (seq !== null) {
      const key = `${rid}\u0000${seq}`;
      duplicate = this.seen.has(key);
      this.seen.add(key);
    }
    const type = typeof frame?.type === "string" ? frame.type : "(no type)";
    this.add({ direction: "in", rid, seq, type, duplicate, summary: summarize(frame), raw: frame });
  }

  /** Log a message the page sent (the text given to WebSocket.send). */
  sent(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      message = { unparsed: String(text) };
    }
    const rid = typeof message?.request_id === "string" ? message.request_id : "";
    const action = typeof message?.action === "string" ? message.action : "(no action)";
    const summary = action === "resume" ? `after seq ${message.after_seq ?? 0}` : message.question ? `“${clip(message.question, 60)}”` : "";
    this.add({ direction: "out", rid, seq: null, type: action, duplicate: false, summary, raw: message });
  }

  clear() {
    this.list.replaceChildren();
    this.total = 0;
    this.counter.textContent = "0";
  }

  add({ direction, rid, seq, type, duplicate, summary, raw }) {
    const stick = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 8;
    const label = direction === "in" ? "received" : "sent";
    const entry = h(
      "li",
      {
        class: `frame ${direction}${duplicate ? " duplicate" : ""}`,
        "data-direction": direction,
        "data-request-id": rid,
        "data-seq": seq ?? "",
        "data-type": type,
        "data-duplicate": duplicate ? "true" : "false",
      },
      h(
        "details",
        {},
        h(
          "summary",
          {},
          h("span", { class: "dir", "aria-label": label, text: direction === "in" ? "↓" : "↑" }),
          h("time", { text: clock(Date.now()) }),
          h("span", { class: "seq", text: seq === null ? "–" : `seq ${seq}` }),
          h("span", { class: `type t-${type}`, text: type }),
          rid ? h("span", { class: "rid", text: rid }) : null,
          duplicate ? h("span", { class: "dup", text: "repeat, ignored" }) : null,
          summary ? h("span", { class: "summary", text: summary }) : null,
        ),
        h("pre", { class: "raw", text: JSON.stringify(raw, null, 2) }),
      ),
    );
    this.list.append(entry);
    while (this.list.childElementCount > MAX_ENTRIES) this.list.firstElementChild.remove();
    this.total += 1;
    this.counter.textContent = String(this.total);
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }
}

function summarize(frame) {
  if (!frame || typeof frame !== "object") return String(frame);
  switch (frame.type) {
    case "status":
      return frame.stage === "tool" ? `${frame.tool} (step ${frame.step})` : frame.stage ?? frame.message ?? "";
    case "delta":
      return clip(frame.content ?? "", 60);
    case "message":
      return `${(frame.content ?? "").length} characters`;
    case "result":
      return frame.data?.stop_reason ?? "";
    case "error":
      return `${frame.code ?? ""}: ${clip(frame.error ?? "", 60)}`;
    default:
      return frame.message ? clip(String(frame.message), 60) : "";
  }
}

function clip(text, length) {
  const flat = String(text).replace(/\s+/g, " ");
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}
