// The gateways the tests talk to, and helpers to watch and drop connections.
//
// tests/e2e/test_js_client.py starts two `selador serve` processes (anonymous, and AUTH_MODE=jwt)
// and passes their URLs in the environment. Run alone (`npm test`), this starts them itself with
// the repository's Python (SELADOR_PYTHON, else ../../.venv/bin/python, else python3).
import { spawn, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { connect } from "../selador.js";

export { WebSocket };

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
// Slow, finely streamed answers (as tests/e2e/test_runs_e2e.py's SLOW_STREAM): about a second per
// answer and a delta every 10-40 ms, so a connection can be dropped in the middle of one.
const SLOW_STREAM = [
  "LOCAL_MODEL_TOKEN_DELAY_MS=5",
  "STREAM_FLUSH_MS=10",
  "STREAM_FLUSH_MAX_MS=40",
  "RUN_POLL_MS=50",
];
const SECRET = "js-client-tests-secret-0123456789abcdef-0123";
const BANNER = /WebSocket\s+ws:\/\/([^\s/]+):(\d+)\/(\S+)/;

export const QUESTIONS = {
  zoning: { question: "What are the zoning requirements for residential development?", queryType: "zoning" },
  permits: { question: "What permits do I need to build a deck in Seattle?", queryType: "permits" },
  financing: {
    question: "What is the monthly payment on a $500,000 house with 20% down at 6.5% interest?",
    queryType: "financing",
  },
};

/** URLs of one gateway: {ws, http, management, stats}. */
function endpoints(ws, http, management, stats) {
  return { ws, http, management, stats };
}

function python() {
  if (process.env.SELADOR_PYTHON) return process.env.SELADOR_PYTHON;
  const venv = `${REPO}.venv/bin/python`;
  return existsSync(venv) ? venv : "python3";
}

function childEnv(extra = {}) {
  const env = { ...process.env, PYTHONPATH: `${REPO}src`, PYTHONUNBUFFERED: "1", ...extra };
  for (const name of Object.keys(env)) if (/proxy/i.test(name)) delete env[name];
  return env;
}

/** Start `selador serve --port 0` with `--env` pairs; stopped when the test file ends. */
function serve(pairs) {
  const args = ["-m", "selador.local.cli", "serve", "--host", "127.0.0.1", "--port", "0"];
  for (const pair of pairs) args.push("--env", pair);
  const child = spawn(python(), args, { cwd: REPO, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
  // Stopped (as Ctrl-C would) when this test file's process exits; unref'd so it does not keep it alive.
  process.once("exit", () => child.kill("SIGINT"));
  child.unref();
  let output = "";
  return new Promise((resolve, reject) => {
    const read = (chunk) => {
      output += chunk;
      const match = BANNER.exec(output);
      if (!match) return;
      child.stdout.off("data", read);
      child.stdout.resume(); // keep draining: a full pipe would block the gateway
      child.stdout.unref();
      child.stderr.unref();
      const [, host, port, stage] = match;
      const base = `http://${host}:${port}`;
      resolve(endpoints(`ws://${host}:${port}/${stage}`, base, `${base}/${stage}`, `${base}/_selador/stats`));
    };
    child.stdout.setEncoding("utf8").on("data", read);
    child.stderr.setEncoding("utf8").on("data", (chunk) => (output += chunk));
    child.on("exit", (code) =>
      reject(new Error(`selador serve exited with ${code} before it was ready:\n${output}`)),
    );
  });
}

let anonymous;
let secured;

/** The anonymous gateway (slow stream). */
export function gateway() {
  const env = process.env;
  if (env.SELADOR_WS_URL) {
    return Promise.resolve(
      endpoints(env.SELADOR_WS_URL, env.SELADOR_HTTP_URL, env.SELADOR_MANAGEMENT_URL, env.SELADOR_STATS_URL),
    );
  }
  anonymous ??= serve(SLOW_STREAM);
  return anonymous;
}

/** The AUTH_MODE=jwt gateway and a token it accepts: {ws, token}. */
export function securedGateway() {
  const env = process.env;
  if (env.SELADOR_JWT_WS_URL) return Promise.resolve({ ws: env.SELADOR_JWT_WS_URL, token: env.SELADOR_JWT });
  secured ??= serve([...SLOW_STREAM, "AUTH_MODE=jwt", `AUTH_HS256_SECRET=${SECRET}`]).then((urls) => {
    const args = ["-m", "selador.local.cli", "token", "--sub", "js-tests", "--ttl", "600"];
    const token = execFileSync(python(), args, {
      env: childEnv({ AUTH_HS256_SECRET: SECRET }),
      encoding: "utf8",
    });
    return { ws: urls.ws, token: token.trim() };
  });
  return secured;
}

/** connect() with the `ws` package, closed when test `t` ends (passed or not). */
export async function open(t, url, options = {}) {
  const client = await connect(url, { WebSocket, ...options });
  t.after(() => client.close());
  return client;
}

const references = new Map();

/** The answer text to `question` on a connection that stays up (the offline model is deterministic). */
export async function reference(t, gw, question) {
  const key = `${gw.ws} ${question.question}`;
  if (!references.has(key)) {
    const client = await open(t, gw.ws);
    references.set(key, deltas(await drain(client.ask(question))));
    client.close();
  }
  return references.get(key);
}

/** A random tag, to find a connection in the gateway's stats. */
export function newTag(prefix) {
  return `${prefix}-${Math.random().toString(16).slice(2, 10)}`;
}

/** The gateway's connections opened with `?tag={tag}` (every one, open or closed). */
export async function tagged(gw, tag) {
  const response = await fetch(gw.stats);
  if (!response.ok) throw new Error(`GET ${gw.stats}: ${response.status}`);
  return (await response.json()).connections.filter((c) => c.query?.tag === tag);
}

/** DeleteConnection on the open connection tagged `tag`: the server closes it (code 1000). */
export async function dropFromServer(gw, tag) {
  const open = (await tagged(gw, tag)).filter((c) => c.state === "open");
  if (open.length !== 1)
    throw new Error(`expected one open connection tagged ${tag}, found ${JSON.stringify(open)}`);
  const id = encodeURIComponent(open[0].connectionId);
  const response = await fetch(`${gw.management}/@connections/${id}`, { method: "DELETE" });
  if (response.status !== 204)
    throw new Error(`DELETE @connections/${id}: ${response.status} ${await response.text()}`);
  return open[0].connectionId;
}

/** Resolve with the event's detail the first time `type` fires on `target` with `accept(detail)`. */
export function nextEvent(target, type, accept = () => true) {
  return new Promise((resolve) => {
    const listener = (event) => {
      if (!accept(event.detail)) return;
      target.removeEventListener(type, listener);
      resolve(event.detail);
    };
    target.addEventListener(type, listener);
  });
}

/** Every frame of a run, read to its end. */
export async function drain(run) {
  const frames = [];
  for await (const frame of run) frames.push(frame);
  return frames;
}

/** The answer text of `frames`: their deltas, in order. */
export function deltas(frames) {
  return frames
    .filter((f) => f.type === "delta")
    .map((f) => f.content)
    .join("");
}

/** The protocol's guarantees over a run's frames; returns the terminal frame. */
export function checkRun(run, frames) {
  assert.deepEqual(
    frames.map((f) => f.seq),
    frames.map((_, i) => i + 1),
    "every seq once, in order, from 1",
  );
  assert.equal(frames[0].type, "status");
  assert.equal(frames[0].stage, "accepted");
  assert.equal(frames[0].run_token, run.runToken);
  assert.ok(frames.every((f) => f.request_id === run.requestId));
  const terminals = frames.filter((f) => f.type === "result" || f.type === "error");
  assert.deepEqual(terminals, [frames.at(-1)], "exactly one terminal frame, the last");
  assert.deepEqual(run.frames, frames);
  return frames.at(-1);
}
