// Asking and streaming: frames in seq order to one terminal result, several runs at once, keep-alive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { QUESTIONS, checkRun, deltas, drain, gateway, nextEvent, open, reference } from "./gateway.js";

const TIMEOUT = { timeout: 60_000 };

test(
  "ask streams the status steps, the deltas and a result whose content is the deltas",
  TIMEOUT,
  async (t) => {
    const gw = await gateway();
    const client = await open(t, gw.ws);
    assert.equal(client.state, "open");
    const run = client.ask({ ...QUESTIONS.zoning, context: "Looking at a property in Capitol Hill area" });
    assert.match(run.requestId, /^js-[0-9a-f]{16}$/);
    const frames = await drain(run);
    const terminal = checkRun(run, frames);
    assert.equal(terminal.type, "result");
    const data = await run.result;
    assert.deepEqual(data, terminal.data);
    assert.equal(data.success, true);
    assert.equal(data.stop_reason, "end_turn");
    assert.equal(data.agent, "rag");
    assert.equal(data.query_type, "zoning");
    assert.ok(
      data.sources.length > 0 && data.sources.every((s) => s.title && s.location),
      "sources with titles",
    );
    assert.ok(data.tools_used > 0 && data.usage.total_tokens > 0 && data.duration_ms >= 0);
    const stages = frames.filter((f) => f.type === "status").map((f) => f.stage);
    assert.deepEqual(stages.slice(0, 3), ["accepted", "routed", "tool"]);
    assert.ok(stages.includes("composing"), `a composing step: ${stages}`);
    assert.ok(
      frames.filter((f) => f.stage === "tool").every((f) => f.tool && f.step > 0),
      "tool steps named",
    );
    const text = deltas(frames);
    assert.ok(frames.filter((f) => f.type === "delta").length > 5, "streamed in pieces");
    assert.equal(data.content, text, "the result's content is the concatenated deltas");
    assert.equal(frames.filter((f) => f.type === "message").at(-1).content, text);
    assert.equal(run.done, true);
    client.close();
    assert.equal(client.state, "closed");
  },
);

test("several questions at once on one connection each get their own whole answer", TIMEOUT, async (t) => {
  const gw = await gateway();
  const client = await open(t, gw.ws);
  const singles = {};
  for (const [name, question] of Object.entries(QUESTIONS)) singles[name] = await reference(t, gw, question);
  const runs = Object.fromEntries(Object.entries(QUESTIONS).map(([name, q]) => [name, client.ask(q)]));
  const answers = await Promise.all(Object.values(runs).map((run) => drain(run)));
  const seen = new Set();
  for (const [[name, run], frames] of Object.entries(runs).map((entry, i) => [entry, answers[i]])) {
    assert.equal(checkRun(run, frames).type, "result");
    assert.equal(deltas(frames), singles[name], `${name}: the same answer as when asked alone`);
    assert.ok(!seen.has(run.runToken), "a token per run");
    seen.add(run.runToken);
  }
  client.close();
});

test("an explicit requestId is used; a bad or running one is refused before sending", TIMEOUT, async (t) => {
  const gw = await gateway();
  const client = await open(t, gw.ws);
  const run = client.ask({ ...QUESTIONS.permits, requestId: "q-é 17" });
  assert.equal(run.requestId, "q-é 17");
  assert.throws(() => client.ask({ ...QUESTIONS.permits, requestId: "q-é 17" }), { code: "bad_request" });
  for (const requestId of ["", "x".repeat(65), "tab\there", 17]) {
    assert.throws(
      () => client.ask({ ...QUESTIONS.permits, requestId }),
      { code: "bad_request" },
      String(requestId),
    );
  }
  const frames = await drain(run);
  assert.equal(checkRun(run, frames).type, "result");
  assert.ok(frames.every((f) => f.request_id === "q-é 17"));
  // Its result arrived: the id is free again.
  const again = client.ask({ ...QUESTIONS.permits, requestId: "q-é 17" });
  assert.equal((await again.result).success, true);
  client.close();
});

test("the keep-alive ping is sent while open and its pongs reach the frame event", TIMEOUT, async (t) => {
  const gw = await gateway();
  const client = await open(t, gw.ws, { pingIntervalMs: 50 });
  const pongs = [];
  await new Promise((resolve) => {
    client.addEventListener("frame", ({ detail }) => {
      if (detail.frame?.type !== "pong") return;
      pongs.push(detail);
      if (pongs.length === 3) resolve();
    });
  });
  for (const { frame, raw } of pongs) {
    assert.equal(typeof frame.timestamp, "number");
    assert.equal(frame.request_id, undefined);
    assert.deepEqual(JSON.parse(raw), frame);
  }
  // Pings do not disturb a run on the same connection.
  const run = client.ask(QUESTIONS.financing);
  assert.equal(checkRun(run, await drain(run)).type, "result");
  client.close();
  assert.equal(client.state, "closed");
});

test("state events: open, then closed on close(); ask after close() throws", TIMEOUT, async (t) => {
  const gw = await gateway();
  const client = await open(t, gw.ws);
  const closed = nextEvent(client, "state");
  client.close();
  assert.deepEqual(await closed, { state: "closed" });
  assert.throws(() => client.ask(QUESTIONS.permits), { name: "SeladorError", code: "closed" });
});
