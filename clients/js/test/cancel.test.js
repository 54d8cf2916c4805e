// Stopping: cancel() ends a run with its cancelled result; close() ends the client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SeladorError } from "../selador.js";
import {
  QUESTIONS,
  checkRun,
  deltas,
  drain,
  dropFromServer,
  gateway,
  newTag,
  nextEvent,
  open,
  reference,
  securedGateway,
} from "./gateway.js";

const TIMEOUT = { timeout: 60_000 };

test(
  "cancel() mid-answer ends the run with a cancelled result holding the text streamed",
  TIMEOUT,
  async (t) => {
    const gw = await gateway();
    const client = await open(t, gw.ws);
    const whole = await reference(t, gw, QUESTIONS.zoning);
    const run = client.ask(QUESTIONS.zoning);
    const frames = [];
    let cancelledAt = 0;
    for await (const frame of run) {
      frames.push(frame);
      if (!cancelledAt && frame.type === "delta") {
        cancelledAt = frame.seq;
        await run.cancel();
      }
    }
    const terminal = checkRun(run, frames);
    assert.equal(terminal.type, "result");
    const data = await run.result;
    assert.equal(data.success, false);
    assert.equal(data.stop_reason, "cancelled");
    assert.equal(data.content, deltas(frames), "the cancelled content is exactly the deltas streamed");
    assert.ok(data.content.length < whole.length, "stopped before the end");
    // Cancelling an ended run does nothing (no refusal turns into an error).
    await run.cancel();
    assert.deepEqual(await run.result, data);
    client.close();
  },
);

test("cancel() before the accepted frame waits for the run's token, then stops it", TIMEOUT, async (t) => {
  const gw = await gateway();
  const client = await open(t, gw.ws);
  const run = client.ask(QUESTIONS.permits);
  assert.equal(run.runToken, null);
  const sent = [];
  const cancelling = run.cancel();
  assert.equal(run.cancel(), cancelling, "one cancel, however often asked");
  await cancelling.then(() => sent.push(run.runToken));
  assert.ok(sent[0]?.startsWith("rt1."), "sent once the token was known");
  const frames = await drain(run);
  assert.equal(checkRun(run, frames).type, "result");
  assert.equal((await run.result).stop_reason, "cancelled");
  client.close();
});

test("cancel() while reconnecting is sent after the resume and stops the run", TIMEOUT, async (t) => {
  const gw = await gateway();
  const tag = newTag("js-cancel-drop");
  const client = await open(t, `${gw.ws}?tag=${tag}`, { backoff: { initialMs: 100 } });
  const run = client.ask(QUESTIONS.zoning);
  await nextEvent(client, "frame", (d) => d.frame?.request_id === run.requestId && d.frame.type === "delta");
  const gone = nextEvent(client, "state", (d) => d.state === "reconnecting");
  await dropFromServer(gw, tag);
  await gone;
  const cancelling = run.cancel();
  const frames = await drain(run);
  await cancelling;
  const terminal = checkRun(run, frames);
  assert.equal(terminal.data.stop_reason, "cancelled");
  assert.equal(terminal.data.content, deltas(frames));
  client.close();
});

test("close() with a run going: no reconnect, the run rejects with closed", TIMEOUT, async (t) => {
  const gw = await gateway();
  const client = await open(t, gw.ws);
  const run = client.ask(QUESTIONS.financing);
  const reconnects = [];
  client.addEventListener("reconnect", (e) => reconnects.push(e.detail.attempt));
  const seen = [];
  await assert.rejects(
    (async () => {
      for await (const frame of run) {
        seen.push(frame);
        if (frame.stage === "accepted") client.close();
      }
    })(),
    (error) => error instanceof SeladorError && error.code === "closed",
  );
  await assert.rejects(run.result, { code: "closed" });
  assert.equal(seen.length, 1);
  assert.equal(client.state, "closed");
  assert.equal(run.done, true);
  assert.deepEqual(reconnects, []);
});

test(
  "cancel() of an owner's run followed by id after a seq, without its token, is sent and stops it",
  TIMEOUT,
  async (t) => {
    // An authenticated user may resume and cancel their runs without the run's token; following
    // after seq 3, the accepted frame (which carries the token) never comes to this client.
    const gw = await securedGateway();
    const first = await open(t, gw.ws, { token: gw.token });
    const started = first.ask(QUESTIONS.zoning);
    for await (const frame of started) if (frame.type === "delta") break;
    const { requestId } = started;
    first.close(); // the run goes on on the server (on_disconnect: continue)
    const second = await open(t, gw.ws, { token: gw.token });
    const run = second.resume({ requestId, afterSeq: 3 });
    let cancelled = null;
    const frames = [];
    for await (const frame of run) {
      frames.push(frame);
      if (!cancelled) cancelled = run.cancel();
    }
    await cancelled;
    assert.equal(run.runToken, null, "the token never came");
    assert.deepEqual(frames.map((f) => f.seq), frames.map((_, i) => i + 4), "from seq 4 on");
    assert.equal((await run.result).stop_reason, "cancelled");
    second.close();
  },
);
