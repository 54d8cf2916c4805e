// Dropped connections: the client reconnects by itself and resumes every unfinished run after the
// last seq it has; the answer completes with every seq once, in order, and the same text.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  QUESTIONS,
  checkRun,
  deltas,
  drain,
  dropFromServer,
  gateway,
  nextEvent,
  newTag,
  open,
  reference,
  tagged,
} from "./gateway.js";

const TIMEOUT = { timeout: 90_000 };

/** Watch a client's events: the states it went through, its reconnects, every raw frame. */
function record(client) {
  const log = { states: [], reconnects: [], raw: [] };
  client.addEventListener("state", (e) => log.states.push(e.detail.state));
  client.addEventListener("reconnect", (e) => log.reconnects.push(e.detail.attempt));
  client.addEventListener("frame", (e) => log.raw.push(e.detail.frame));
  return log;
}

test(
  "a connection deleted by the server mid-answer is reconnected and the run resumed, twice",
  TIMEOUT,
  async (t) => {
    const gw = await gateway();
    const expected = await reference(t, gw, QUESTIONS.zoning);
    const tag = newTag("js-server-drop");
    const client = await open(t, `${gw.ws}?tag=${tag}`, { backoff: { initialMs: 50 } });
    const log = record(client);
    const run = client.ask(QUESTIONS.zoning);
    const frames = [];
    const dropped = []; // the seq seen last before each drop
    for await (const frame of run) {
      frames.push(frame);
      const pieces = frames.filter((f) => f.type === "delta").length;
      // Mid-answer, twice: after the 3rd and the 8th piece of text.
      if ((pieces === 3 && dropped.length === 0) || (pieces === 8 && dropped.length === 1)) {
        const reconnected = nextEvent(client, "state", (d) => d.state === "open");
        await dropFromServer(gw, tag);
        dropped.push(frame.seq);
        await reconnected;
      }
    }
    assert.equal(dropped.length, 2, "both drops happened before the answer ended");
    const terminal = checkRun(run, frames);
    assert.equal(terminal.type, "result");
    assert.equal(terminal.data.stop_reason, "end_turn");
    assert.equal(deltas(frames), expected, "no gap, no repeat: the same text as without drops");
    assert.equal(terminal.data.content, expected);
    assert.ok(terminal.seq > dropped[1] + 1, "frames were left to resume after the second drop");
    assert.deepEqual(log.states, ["reconnecting", "open", "reconnecting", "open"]);
    assert.deepEqual(log.reconnects, [1, 1], "the attempt count starts again once reconnected");
    // Each frame of the run reached this client at least once; repeats (if any) were dropped and counted.
    const raw = log.raw.filter((f) => f?.request_id === run.requestId);
    assert.deepEqual(
      [...new Set(raw.map((f) => f.seq))].sort((a, b) => a - b),
      frames.map((f) => f.seq),
    );
    assert.equal(raw.length - frames.length, run.duplicates);
    // Three connections carried it: two deleted by the server (1000), the last one still open.
    const connections = await tagged(gw, tag);
    assert.deepEqual(
      connections.map((c) => [c.state, c.closeCode]),
      [
        ["closed", 1000],
        ["closed", 1000],
        ["open", null],
      ],
    );
    client.close();
  },
);

test("several runs on a deleted connection all resume on the new one", TIMEOUT, async (t) => {
  const gw = await gateway();
  const expected = {};
  for (const [name, question] of Object.entries(QUESTIONS)) expected[name] = await reference(t, gw, question);
  const tag = newTag("js-many");
  const client = await open(t, `${gw.ws}?tag=${tag}`, { backoff: { initialMs: 50 } });
  const runs = Object.entries(QUESTIONS).map(([name, q]) => [name, client.ask(q)]);
  // Once every run has streamed some text, the server deletes the connection.
  await Promise.all(
    runs.map(([, run]) =>
      nextEvent(client, "frame", (d) => d.frame?.request_id === run.requestId && d.frame.type === "delta"),
    ),
  );
  const reconnected = nextEvent(client, "state", (d) => d.state === "open");
  await dropFromServer(gw, tag);
  await reconnected;
  for (const [name, run] of runs) {
    const frames = await drain(run);
    assert.equal(checkRun(run, frames).type, "result", name);
    assert.equal(deltas(frames), expected[name], name);
  }
  assert.equal((await tagged(gw, tag)).length, 2);
  client.close();
});

test("drop() cuts the socket as a failing network would; the run resumes", TIMEOUT, async (t) => {
  const gw = await gateway();
  const expected = await reference(t, gw, QUESTIONS.permits);
  const tag = newTag("js-client-drop");
  const client = await open(t, `${gw.ws}?tag=${tag}`, { backoff: { initialMs: 50 } });
  const log = record(client);
  const run = client.ask(QUESTIONS.permits);
  const frames = [];
  let droppedAt = 0;
  for await (const frame of run) {
    frames.push(frame);
    if (!droppedAt && frames.filter((f) => f.type === "delta").length === 2) {
      droppedAt = frame.seq;
      client.drop();
      assert.equal(client.state, "reconnecting");
    }
  }
  assert.equal(checkRun(run, frames).type, "result");
  assert.equal(deltas(frames), expected);
  assert.ok(frames.length > droppedAt + 1);
  assert.deepEqual(log.states, ["reconnecting", "open"]);
  // No close frame: the gateway saw the first connection end abnormally.
  const connections = await tagged(gw, tag);
  assert.deepEqual(
    connections.map((c) => [c.state, c.closeCode]),
    [
      ["closed", 1006],
      ["open", null],
    ],
  );
  client.close();
});

test("a question asked while reconnecting is sent once the connection is back", TIMEOUT, async (t) => {
  const gw = await gateway();
  const expected = await reference(t, gw, QUESTIONS.financing);
  const client = await open(t, gw.ws, { backoff: { initialMs: 200 } });
  client.drop();
  assert.equal(client.state, "reconnecting");
  const run = client.ask(QUESTIONS.financing);
  const frames = await drain(run);
  assert.equal(checkRun(run, frames).type, "result");
  assert.equal(deltas(frames), expected);
  assert.equal(client.state, "open");
  client.close();
});

test(
  "resume() follows a run another client started (a reloaded page), whole or after a seq",
  TIMEOUT,
  async (t) => {
    const gw = await gateway();
    const expected = await reference(t, gw, QUESTIONS.zoning);
    const first = await open(t, gw.ws);
    const started = first.ask(QUESTIONS.zoning);
    for await (const frame of started) if (frame.type === "delta") break;
    const { requestId, runToken } = started;
    first.close(); // the run goes on on the server (on_disconnect: continue)
    await assert.rejects(started.result, { code: "closed" });

    // Two tabs follow it: the latest resume takes the live frames, so each one, falling silent,
    // resumes again (resumeRetryMs) and both get the whole answer.
    const second = await open(t, gw.ws, { resumeRetryMs: 200 });
    const whole = second.resume({ requestId, runToken });
    assert.throws(() => second.resume({ requestId, runToken }), { code: "bad_request" });
    const later = (await open(t, gw.ws, { resumeRetryMs: 200 })).resume({ requestId, runToken, afterSeq: 3 });
    const [frames, rest] = await Promise.all([drain(whole), drain(later)]);
    assert.equal(checkRun(whole, frames).type, "result");
    assert.equal(deltas(frames), expected);
    assert.deepEqual(rest, frames.slice(3), "from seq 4 on");
    assert.deepEqual(await later.result, await whole.result);
    // Without its token an anonymous run is not to be had.
    const stranger = (await open(t, gw.ws)).resume({ requestId });
    await assert.rejects(stranger.result, { code: "unknown_run" });
    assert.deepEqual(await drain(stranger), [stranger.frames[0]]);
  },
);
