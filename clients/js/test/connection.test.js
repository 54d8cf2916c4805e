// Connecting: tokens, refused handshakes, giving up after maxReconnectAttempts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocketServer } from "ws";
import { connect, SeladorClient, SeladorError } from "../selador.js";
import { QUESTIONS, WebSocket, checkRun, drain, nextEvent, open, securedGateway } from "./gateway.js";

const TIMEOUT = { timeout: 60_000 };

test(
  "with AUTH_MODE=jwt the token goes in ?token=; without one the handshake is refused",
  TIMEOUT,
  async (t) => {
    const gw = await securedGateway();
    await assert.rejects(connect(gw.ws, { WebSocket }), (error) => {
      assert.ok(error instanceof SeladorError);
      assert.equal(error.code, "connect_failed");
      assert.match(error.message, /could not connect to ws:\/\/127\.0\.0\.1:\d+\/production: /);
      return true;
    });
    await assert.rejects(connect(gw.ws, { WebSocket, token: "not-a-jwt" }), { code: "connect_failed" });
    const client = await open(t, gw.ws, { token: gw.token });
    const run = client.ask(QUESTIONS.permits);
    assert.equal(checkRun(run, await drain(run)).type, "result");
  },
);

test("a token function is asked for a token on every connect, reconnects included", TIMEOUT, async (t) => {
  const gw = await securedGateway();
  let asked = 0;
  const client = await open(t, gw.ws, {
    token: async () => {
      asked += 1;
      return gw.token;
    },
    backoff: { initialMs: 10 },
  });
  assert.equal(asked, 1);
  const back = nextEvent(client, "state", (d) => d.state === "open");
  client.drop();
  await back;
  assert.equal(asked, 2);
  assert.equal((await client.ask(QUESTIONS.permits).result).success, true);
});

test("connect() rejects with connect_failed for a bad URL or nothing listening", TIMEOUT, async () => {
  await assert.rejects(connect("not a url", { WebSocket }), { name: "SeladorError", code: "connect_failed" });
  const server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  await assert.rejects(connect(`ws://127.0.0.1:${port}/production`, { WebSocket }), {
    code: "connect_failed",
  });
});

test("without a WebSocket implementation connect() says how to get one", TIMEOUT, async () => {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = undefined;
  try {
    await assert.rejects(connect("ws://127.0.0.1:1/production"), (error) => {
      assert.equal(error.code, "no_websocket");
      assert.match(error.message, /ws package/);
      return true;
    });
    assert.equal(new SeladorClient("ws://127.0.0.1:1").state, "closed");
  } finally {
    globalThis.WebSocket = saved;
  }
});

test(
  "after maxReconnectAttempts failed reconnects, unfinished runs reject with connection_lost",
  TIMEOUT,
  async () => {
    // A stand-in server that accepts, swallows the question, then goes away for good.
    const server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await new Promise((resolve) => server.once("listening", resolve));
    const received = [];
    const asked = new Promise((resolve) =>
      server.on("connection", (socket) =>
        socket.on("message", (data) => resolve(received.push(JSON.parse(data)))),
      ),
    );
    const client = await connect(`ws://127.0.0.1:${server.address().port}/x`, {
      WebSocket,
      maxReconnectAttempts: 2,
      backoff: { initialMs: 10, maxMs: 20 },
    });
    const attempts = [];
    client.addEventListener("reconnect", (e) => attempts.push(e.detail.attempt));
    const run = client.ask({ question: "anyone there?" });
    await asked;
    for (const socket of server.clients) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
    await assert.rejects(run.result, (error) => {
      assert.equal(error.code, "connection_lost");
      assert.match(error.message, /2 reconnects failed/);
      return true;
    });
    await assert.rejects(drain(run), { code: "connection_lost" });
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(client.state, "closed");
    assert.equal(received[0].action, "invoke");
    assert.equal(received[0].request_id, run.requestId);
  },
);
