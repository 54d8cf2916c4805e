/**
 * Selador WebSocket client (protocol 1.2, docs/protocol.md): ask questions, stream their frames,
 * survive dropped connections. No dependencies; browsers (native `WebSocket`) and Node >= 20 (pass
 * `{WebSocket}` from the `ws` package, or use the global one). Usage: clients/js/README.md.
 * @module selador
 */

const OPEN = 1; // WebSocket.OPEN, the same in browsers and in `ws`
// The server echoes a request_id in its refusals only when it is 1-64 printable characters
// (Python's str.isprintable); an id it cannot echo would leave its refusal unmatched.
const PRINTABLE = /^(?:[^\p{C}\p{Z}]| )+$/u;

/** An error frame, a refusal, or a connection that could not be (re)opened. */
export class SeladorError extends Error {
  /**
   * @param {string} code The frame's (`bad_request`, `session_busy`…) or the client's own
   *   (`connect_failed`, `connection_lost`, `closed`, `no_websocket`).
   * @param {string} message Safe to show a user. @param {object|null} [frame] The error frame, if any.
   */
  constructor(code, message, frame = null) {
    super(message);
    this.name = "SeladorError";
    this.code = code;
    this.frame = frame;
  }
}

/** Frames further than this past the next expected `seq` are dropped until the gap is filled. */
export const REORDER_WINDOW = 256;

/**
 * Open a client and wait for its first connection.
 *
 * @param {string} url `ws://127.0.0.1:3001/production`, a stack's `WebSocketURL`; query parameters
 *   it carries (`?tag=…`) are kept on every reconnect.
 * @param {object} [options]
 * @param {string|(() => string|Promise<string>)} [options.token] A JWT (sent as `?token=…`), or a
 *   function giving a fresh one for each (re)connect.
 * @param {Function} [options.WebSocket] WebSocket constructor; default `globalThis.WebSocket`.
 * @param {number} [options.pingIntervalMs=300000] App-level `ping` while open (API Gateway closes
 *   a connection idle for 10 minutes); 0 turns it off.
 * @param {number} [options.pongTimeoutMs=30000] Nothing heard this long after a ping: the
 *   connection is taken as dead and replaced.
 * @param {number} [options.resumeRetryMs=5000] A run silent this long, or with a gap in its seqs,
 *   is resumed again (each silent retry waits twice as long); 0 turns it off.
 * @param {{initialMs?: number, maxMs?: number, factor?: number, jitter?: number}} [options.backoff]
 * @param {number} [options.maxReconnectAttempts=Infinity] Failed attempts in a row before giving up.
 * @param {string} [options.sessionToken] An anonymous session token kept from an earlier visit.
 * @returns {Promise<SeladorClient>} Rejects with `SeladorError` `connect_failed` when the first
 *   connection cannot be opened (bad URL, refused handshake, nothing listening).
 */
export async function connect(url, options = {}) {
  const client = new SeladorClient(url, options);
  await client.opened;
  return client;
}

/**
 * One logical connection: reconnects with backoff whenever the socket closes without `close()`
 * (a server close included: idle timeout, 2-hour limit, DeleteConnection) and resumes every
 * unfinished run. Events: `state` (`detail.state`), `frame` (`detail.frame`, `detail.raw`: every
 * message received, pongs, duplicates and refusals included), `reconnect` (`detail.attempt`).
 */
export class SeladorClient extends EventTarget {
  /** Use {@link connect}. @param {string} url @param {object} [options] See {@link connect}. */
  constructor(url, options = {}) {
    super();
    this.url = url;
    /** @type {"connecting"|"open"|"reconnecting"|"closed"} */ this.state = "connecting";
    /** The latest anonymous session token the server issued; sent with every `sessionId` question. */
    this.sessionToken = options.sessionToken ?? null;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._token = options.token;
    this._pingMs = options.pingIntervalMs ?? 300000;
    this._pongMs = options.pongTimeoutMs ?? 30000;
    this._resumeMs = options.resumeRetryMs ?? 5000;
    this._backoff = { initialMs: 250, maxMs: 5000, factor: 2, jitter: 0.2, ...options.backoff };
    this._maxAttempts = options.maxReconnectAttempts ?? Infinity;
    this._runs = new Map(); // unfinished runs by request_id
    this._socket = null;
    this._attempt = 0; // failed reconnects in a row
    this._timers = {};
    this._wasOpen = false;
    /** Resolves on the first open; rejects when it fails. */
    this.opened = new Promise((resolve, reject) => (this._first = { resolve, reject }));
    this.opened.catch(() => {}); // connect() reports it; no unhandled rejection for direct users
    const missing = "no WebSocket: pass {WebSocket} (in Node, the ws package)";
    if (typeof this._WebSocket === "function") this._dial();
    else this._closeWith(new SeladorError("no_websocket", missing));
  }

  /**
   * Ask a question. Sent now when open, else as soon as the connection is back.
   *
   * @param {object} request
   * @param {string} request.question
   * @param {string} [request.context]
   * @param {string} [request.queryType] `general`, `zoning`, `building_codes`, `permits`, `financing`.
   * @param {string} [request.sessionId] A conversation's id, or `"new"` to start one.
   * @param {string} [request.sessionToken] Default: the client's `sessionToken` when a session is named.
   * @param {string} [request.requestId] Default: a random `js-…` id.
   * @param {"continue"|"cancel"} [request.onDisconnect] What the server does when this connection drops.
   * @returns {Run}
   * @throws {SeladorError} `closed`; `bad_request` for a `requestId` that is not 1-64 printable
   *   characters or is one of this client's unfinished runs.
   */
  ask({ question, context, queryType, sessionId, sessionToken, requestId, onDisconnect } = {}) {
    if (this.state === "closed") throw new SeladorError("closed", "the client is closed");
    const id = checkId(requestId ?? newId(), this._runs);
    const invoke = {
      action: "invoke",
      question,
      context,
      query_type: queryType,
      request_id: id,
      on_disconnect: onDisconnect,
      session_id: sessionId,
      session_token: sessionToken ?? (sessionId ? (this.sessionToken ?? undefined) : undefined),
    };
    return this._follow(new Run(this, id, invoke));
  }

  /**
   * Follow a run this client did not start (after a page reload, on another device).
   *
   * @param {object} run
   * @param {string} run.requestId
   * @param {string} [run.runToken] Needed for anonymous runs.
   * @param {number} [run.afterSeq=0] Frames up to this seq are not sent again.
   * @returns {Run}
   */
  resume({ requestId, runToken, afterSeq = 0 }) {
    if (this.state === "closed") throw new SeladorError("closed", "the client is closed");
    const run = new Run(this, checkId(requestId, this._runs), null);
    run.runToken = runToken ?? null;
    run._seq = afterSeq;
    return this._follow(run);
  }

  _follow(run) {
    this._runs.set(run.requestId, run);
    if (this.state === "open") this._attach(run);
    return run;
  }

  /** Close for good: no reconnect; unfinished runs reject with `closed` (they go on on the server). */
  close() {
    this._closeWith(new SeladorError("closed", "the client was closed before the answer was complete"));
  }

  /** Drop the connection as a failing network would: the client reconnects and resumes (to try it). */
  drop() {
    if (this._socket && this.state === "open") this._lost(this._socket, 4000, "dropped by the client");
  }

  async _dial() {
    let url = this.url;
    let socket;
    try {
      const token = typeof this._token === "function" ? await this._token() : this._token;
      if (token) {
        const withToken = new URL(this.url);
        withToken.searchParams.set("token", token);
        url = withToken.toString();
      }
      if (this.state === "closed") return;
      socket = new this._WebSocket(url);
    } catch (error) {
      // A malformed URL, or a token function that threw: the first time, connect() reports it.
      if (this._wasOpen) this._retry(1006);
      else this._fail(error.message);
      return;
    }
    this._socket = socket;
    socket.onopen = () => this._socket === socket && this._opened(socket);
    socket.onmessage = (event) => this._socket === socket && this._message(String(event.data));
    socket.onerror = () => {}; // the close event follows; `ws` throws on an error nobody listens to
    socket.onclose = (event) => this._socket === socket && this._lost(socket, event.code, event.reason);
  }

  _opened(socket) {
    this._wasOpen = true;
    this._attempt = 0;
    this._setState("open");
    this._first.resolve(this);
    if (Number.isFinite(this._pingMs) && this._pingMs > 0) {
      this._timers.ping = unref(setInterval(() => this._ping(socket), this._pingMs));
    }
    for (const run of this._runs.values()) this._attach(run);
  }

  _ping(socket) {
    if (!this._send({ action: "ping" }) || !(this._pongMs > 0) || this._timers.pong) return;
    this._timers.pong = unref(setTimeout(() => this._lost(socket, 4001, "no answer to ping"), this._pongMs));
  }

  _lost(socket, code, reason) {
    if (this._socket !== socket) return;
    this._release(socket);
    if (this.state === "closed") return;
    if (this._wasOpen) this._retry(code);
    else this._fail(`closed with ${code}${reason ? ` (${reason})` : ""} before it opened`);
  }

  _release(socket, clean = false) {
    this._socket = null;
    for (const name of ["ping", "pong"]) this._stop(name);
    socket.onopen = socket.onmessage = socket.onclose = null; // onerror stays: `ws` throws without one
    if (socket.readyState > OPEN) return;
    // terminate() (ws) drops the TCP connection at once, like a failing network; browsers can only close().
    if (clean) socket.close(1000);
    else if (socket.terminate) socket.terminate();
    else socket.close(4000, "dropped");
  }

  _retry(code) {
    if (++this._attempt > this._maxAttempts) {
      const message = `the connection was lost (${code}) and ${this._maxAttempts} reconnects failed`;
      this._closeWith(new SeladorError("connection_lost", message));
      return;
    }
    this._setState("reconnecting");
    const { initialMs, maxMs, factor, jitter } = this._backoff;
    const base = Math.min(maxMs, initialMs * factor ** (this._attempt - 1));
    const delay = Math.max(0, base * (1 + jitter * (2 * Math.random() - 1)));
    this._timers.dial = setTimeout(() => {
      this.dispatchEvent(new CustomEvent("reconnect", { detail: { attempt: this._attempt } }));
      this._dial();
    }, delay);
  }

  _fail(why) {
    this._closeWith(new SeladorError("connect_failed", `could not connect to ${this.url}: ${why}`));
  }

  _closeWith(error) {
    if (this.state === "closed") return;
    this._setState("closed");
    for (const name of Object.keys(this._timers)) this._stop(name);
    if (this._socket) this._release(this._socket, true);
    this._first.reject(error);
    for (const run of [...this._runs.values()]) run._finish(null, error, true);
  }

  _message(raw) {
    this._stop("pong"); // anything arriving shows the connection is alive
    const frame = parse(raw); // null when not JSON: shown to "frame" listeners only
    this.dispatchEvent(new CustomEvent("frame", { detail: { frame, raw } }));
    // API Gateway's own messages have no `type`; pongs and unknown frames name no run of ours.
    const run = frame?.type ? this._runs.get(frame.request_id) : undefined;
    if (!run) return;
    if (frame.seq === undefined || frame.seq === null) run._refused(frame);
    else run._receive(frame);
  }

  /** Follow a run on the current connection: invoke it, or resume it after what it has. */
  _attach(run) {
    if (!run._invoke || run.runToken || run._seq > 0 || run._buffer.size > 0) {
      this._resume(run);
      if (run._cancelled) run._sendCancel();
    } else {
      run._invokes += 1;
      this._send(run._invoke);
    }
  }

  _resume(run, after = run._seq, token = run.runToken ?? undefined) {
    this._send({ action: "resume", request_id: run.requestId, after_seq: after, run_token: token });
    run._watch();
  }

  _send(message) {
    if (!this._socket || this._socket.readyState !== OPEN) return false;
    this._socket.send(JSON.stringify(message));
    return true;
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state } }));
  }

  _stop(name) {
    clearTimeout(this._timers[name]); // clears intervals too
    delete this._timers[name];
  }
}

/**
 * One question. Async-iterable over its frames in `seq` order, each `seq` once, across reconnects,
 * ending after the terminal frame; a refusal (an error without `seq`, e.g. `session_busy`) is
 * yielded as the last frame. Every iteration starts from the first frame. It throws `SeladorError`
 * only when the client closed or gave up reconnecting before the end.
 *
 * @property {string} requestId
 * @property {string|null} runToken From the `accepted` frame: resumes and cancels the run.
 * @property {string|null} sessionId The conversation (generated for `"new"`), from `accepted`.
 * @property {string|null} sessionToken The anonymous session token `accepted` returned.
 * @property {object[]} frames The frames delivered so far, in order.
 * @property {number} duplicates Frames that arrived again (a seq already seen), dropped.
 * @property {boolean} done The terminal frame, a refusal or the client's end has come.
 * @property {Promise<object>} result The result frame's `data` (a cancelled run's too, with
 *   `stop_reason: "cancelled"`); rejects with `SeladorError` on an error frame or a refusal.
 */
export class Run {
  /** Made by {@link SeladorClient#ask} and {@link SeladorClient#resume}. */
  constructor(client, requestId, invoke) {
    this._client = client;
    this._invoke = invoke; // null for a run resumed by id
    this.requestId = requestId;
    this.runToken = null;
    this.sessionId = invoke?.session_id && invoke.session_id !== "new" ? invoke.session_id : null;
    this.sessionToken = null;
    this.frames = [];
    this.duplicates = 0;
    this.done = false;
    this.result = new Promise((resolve, reject) => (this._settle = { resolve, reject }));
    this.result.catch(() => {}); // a caller who only iterates must not get an unhandled rejection
    this._seq = 0; // highest seq up to which nothing is missing
    this._buffer = new Map(); // frames past a gap
    this._invokes = 0;
    this._cancelled = null; // {promise, resolve} once cancel() was called
    this._waiters = [];
    this._failure = null;
  }

  /**
   * Stop the run: sends `cancel` (for a run asked here, once its token is known; again after a
   * reconnect);
   * the run then ends with its cancelled `result`.
   * @returns {Promise<void>} Resolves when the cancel was sent, or the run ended.
   */
  cancel() {
    if (this.done) return Promise.resolve();
    if (!this._cancelled) {
      this._cancelled = {};
      this._cancelled.promise = new Promise((resolve) => (this._cancelled.resolve = resolve));
      this._sendCancel();
    }
    return this._cancelled.promise;
  }

  /** Frames in seq order; leaving the loop early stops this iteration, not the run. */
  async *[Symbol.asyncIterator]() {
    for (let index = 0; ; index++) {
      while (index >= this.frames.length && !this.done) await new Promise((wake) => this._waiters.push(wake));
      if (index < this.frames.length) yield this.frames[index];
      else if (this._failure) throw this._failure;
      else return;
    }
  }

  _sendCancel() {
    // A run asked here may not exist on the server before its accepted frame, and an anonymous
    // one can only be cancelled with its token: wait for that frame. A run followed by id exists,
    // and its owner may cancel it without the token (which never comes after an afterSeq >= 1).
    if (!this.runToken && this._invoke) return;
    const message = { action: "cancel", request_id: this.requestId, run_token: this.runToken ?? undefined };
    if (this._client._send(message)) this._cancelled.resolve();
  }

  _receive(frame) {
    if (this.done) return;
    const { seq } = frame;
    const before = this._seq;
    if (!Number.isInteger(seq) || seq <= this._seq || this._buffer.has(seq)) {
      this.duplicates += 1;
      return;
    }
    // Bounded, as the Python client's: a frame this far past a gap is dropped, and the resume that
    // fills the gap sends it again (the log has it).
    if (seq - this._seq > REORDER_WINDOW) return;
    this._buffer.set(seq, frame);
    while (!this.done && this._buffer.has(this._seq + 1)) {
      const next = this._buffer.get(this._seq + 1);
      this._buffer.delete(++this._seq);
      this._deliver(next);
    }
    // A gap that nothing fills keeps its timer running: the next resume asks for what is missing.
    if (this._seq !== before || this._buffer.size === 0) this._watch();
  }

  _deliver(frame) {
    if (frame.run_token) this.runToken = frame.run_token;
    if (frame.session_id) this.sessionId = frame.session_id;
    if (frame.session_token) this.sessionToken = this._client.sessionToken = frame.session_token;
    this.frames.push(frame);
    if (frame.type === "result") this._finish(frame.data ?? {}, null);
    else if (frame.type === "error") this._finish(null, errorOf(frame));
    else if (frame.run_token && this._cancelled) this._sendCancel();
    this._wake();
  }

  _refused(frame) {
    if (this.done || frame.type !== "error") return;
    // A cancel of a run that has ended: its terminal frame is here or on its way.
    if (frame.code === "not_running") return;
    // Invoked again after a reconnect that lost the accepted frame: it is running; follow it.
    if (frame.code === "duplicate_request" && this._invokes > 1) {
      this._client._resume(this, 0, undefined);
      return;
    }
    this.frames.push(frame);
    this._finish(null, errorOf(frame));
  }

  _finish(data, error, lost = false) {
    if (this.done) return;
    this.done = true;
    this._client._runs.delete(this.requestId);
    clearTimeout(this._watchTimer);
    if (lost) this._failure = error;
    if (error) this._settle.reject(error);
    else this._settle.resolve(data);
    this._cancelled?.resolve();
    this._wake();
  }

  /**
   * Resume again when the run falls silent or a gap stays open: the resume was lost, another tab
   * took the live frames, or the server stopped posting here after a failed post. Each silent
   * retry waits twice as long (up to a minute), so a long silence costs few resumes.
   */
  _watch(delay = this._client._resumeMs) {
    clearTimeout(this._watchTimer);
    if (this.done || !Number.isFinite(delay) || delay <= 0) return;
    this._watchTimer = unref(
      setTimeout(() => {
        // Before the accepted frame an anonymous run has no token to resume with.
        if (this.done || this._client.state !== "open" || (this._invoke && !this.runToken)) return;
        this._client._resume(this);
        this._watch(Math.min(2 * delay, 60000));
      }, delay),
    );
  }

  _wake() {
    for (const wake of this._waiters.splice(0)) wake();
  }
}

function checkId(id, running) {
  if (typeof id !== "string" || !PRINTABLE.test(id) || [...id].length > 64) {
    throw new SeladorError("bad_request", "requestId: must be 1 to 64 printable characters");
  }
  if (running.has(id)) throw new SeladorError("bad_request", `requestId '${id}' is already running`);
  return id;
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorOf(frame) {
  return new SeladorError(frame.code ?? "error", frame.error ?? "the request failed", frame);
}

function newId() {
  const bytes = new Uint8Array(8);
  // getRandomValues works on plain-http pages too (randomUUID needs a secure context).
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return "js-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unref(timer) {
  timer?.unref?.(); // Node: a client's own timers never keep the process alive
  return timer;
}
