// The playground: ask questions over one WebSocket connection with the JavaScript client library
// (/selador.js, the repository's clients/js/selador.js), and watch what arrives.

import { h, randomId } from "./dom.js";
import { FrameInspector } from "./inspector.js";
import { RunCard } from "./run-card.js";

const $ = (id) => document.getElementById(id);
const form = $("ask-form");
const urlInput = $("ws-url");
const tokenInput = $("token");
const questionInput = $("question");
const contextInput = $("context");
const queryTypeInput = $("query-type");
const conversationInput = $("conversation");
const askButton = $("ask");
const connectButton = $("connect");
const dropButton = $("drop");
const newConversationButton = $("new-conversation");
const connectionStatus = $("connection-state");
const formError = $("form-error");
const runsList = $("runs");
const inspector = new FrameInspector($("frames"), $("frame-count"));

const state = {
  library: null,
  client: null,
  clientKey: "",
  connecting: null,
  socket: null,
  runs: new Map(), // request_id → RunCard, while running
  conversation: null, // {element, turns, sessionId, firstPending}
  sessionToken: null, // one per page: it owns every anonymous session started with it
};

// The client library opens its sockets with this class, so the page can see what it sends (the
// inspector shows every invoke, resume and cancel) and which socket is current.
class TrackedWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    state.socket = this;
    this.addEventListener("open", updateControls);
    this.addEventListener("close", updateControls);
  }

  send(data) {
    inspector.sent(data);
    noteSent(data);
    super.send(data);
  }
}

function noteSent(data) {
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return;
  }
  const card = state.runs.get(message?.request_id);
  if (!card) return;
  if (message.action === "resume") card.resuming(message.after_seq ?? 0);
  else if (message.action === "invoke" && card.invoked) card.reinvoked();
  else if (message.action === "invoke") card.invoked = true;
}

function defaultUrl() {
  const given = new URLSearchParams(location.search).get("url");
  if (given) return given;
  const meta = document.querySelector('meta[name="selador-stage"]')?.content ?? "";
  const stage = meta && !meta.includes("SELADOR_STAGE") ? meta : "production";
  if (!location.host) return `ws://127.0.0.1:3001/${stage}`; // opened from a file
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/${encodeURIComponent(stage)}`;
}

function showError(text) {
  formError.textContent = text;
  formError.hidden = !text;
}

function setConnection(kind, text) {
  document.body.dataset.connection = kind;
  connectionStatus.textContent = text;
  updateControls();
}

function updateControls() {
  const open = state.client?.state === "open" && state.socket?.readyState === WebSocket.OPEN;
  dropButton.disabled = !open;
  askButton.disabled = !state.library;
  newConversationButton.disabled = !state.conversation;
}

function checkedUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`“${text}” is not a URL; it looks like ws://127.0.0.1:3001/production`);
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new Error(`the WebSocket URL must start with ws:// or wss://, not ${url.protocol}//`);
  }
  return url.href;
}

/** The client for the URL and token in the form, connecting (again) when needed. */
async function ensureClient({ force = false } = {}) {
  const url = checkedUrl(urlInput.value.trim());
  const token = tokenInput.value.trim();
  const key = `${url}\n${token}`;
  if (!force && state.clientKey === key) {
    if (state.connecting) return state.connecting;
    if (state.client && state.client.state !== "closed") return state.client;
  }
  if (state.runs.size && state.client && state.client.state !== "closed") {
    throw new Error("stop the running questions (or wait for them) before changing the connection");
  }
  state.client?.close();
  state.client = null;
  state.clientKey = key;
  setConnection("connecting", `Connecting to ${url}…`);
  const attempt = state.library
    .connect(url, { token: token || undefined, WebSocket: TrackedWebSocket })
    .then((client) => {
      if (state.clientKey !== key) {
        client.close(); // the settings changed while connecting
        throw new Error("the connection settings changed");
      }
      watch(client, url);
      state.client = client;
      setConnection(client.state, describe(client.state, url));
      return client;
    })
    .catch((error) => {
      if (state.clientKey === key) setConnection("closed", `Not connected: ${error?.message ?? error}`);
      throw error;
    })
    .finally(() => {
      if (state.connecting === attempt) state.connecting = null;
    });
  state.connecting = attempt;
  return attempt;
}

function describe(kind, url, attempt) {
  switch (kind) {
    case "open":
      return `Connected to ${url}`;
    case "connecting":
      return `Connecting to ${url}…`;
    case "reconnecting":
      return attempt ? `Connection lost: reconnecting (attempt ${attempt})…` : "Connection lost: reconnecting…";
    default:
      return `Disconnected from ${url}`;
  }
}

function watch(client, url) {
  let previous = client.state;
  client.addEventListener("frame", (event) => {
    // A message that is not JSON has no frame: the inspector shows its text.
    const { frame, raw } = event.detail;
    inspector.received(frame ?? { unparsed: String(raw ?? "") });
  });
  client.addEventListener("reconnect", (event) => {
    if (state.client === client) setConnection("reconnecting", describe("reconnecting", url, event.detail.attempt));
  });
  client.addEventListener("state", (event) => {
    const next = event.detail.state;
    if (previous === "open" && next === "reconnecting") for (const card of state.runs.values()) card.connectionLost();
    if (previous === "reconnecting" && next === "open") for (const card of state.runs.values()) card.reconnected();
    previous = next;
    if (state.client === client) setConnection(next, describe(next, url));
  });
}

function conversationFor(ask) {
  // Returns {sessionId, sessionToken, conversation} for this question, or throws why not.
  if (!conversationInput.checked) return {};
  let conversation = state.conversation;
  if (!conversation) {
    const heading = h("h3", { text: "Conversation (starting)" });
    const element = h("section", { class: "thread", "aria-label": "Conversation" }, heading);
    conversation = { element, heading, turns: 0, sessionId: null, firstPending: false };
    state.conversation = conversation;
    runsList.append(element);
  }
  if (!conversation.sessionId && conversation.firstPending) {
    throw new Error("the conversation's first question is not accepted yet: ask the follow-up in a moment");
  }
  conversation.turns += 1;
  ask.turn = conversation.turns;
  if (!conversation.sessionId) conversation.firstPending = true;
  return {
    conversation,
    sessionId: conversation.sessionId ?? "new",
    sessionToken: state.sessionToken ?? undefined,
  };
}

async function ask(event) {
  event.preventDefault();
  showError("");
  const question = questionInput.value.trim();
  if (!question) {
    showError("Type a question first.");
    questionInput.focus();
    return;
  }
  let client;
  try {
    client = await ensureClient();
  } catch (error) {
    showError(`Could not connect: ${error?.message ?? error}`);
    return;
  }
  const context = contextInput.value.trim();
  const queryType = queryTypeInput.value;
  const requestId = randomId("pg");
  const askInfo = { question, context, queryType, requestId };
  let session;
  try {
    session = conversationFor(askInfo);
  } catch (error) {
    showError(error.message);
    return;
  }
  let run = null;
  const card = new RunCard({ ...askInfo, onStop: () => run.cancel() });
  state.runs.set(requestId, card);
  (session.conversation?.element ?? runsList).append(card.element);
  try {
    run = client.ask({
      question,
      context: context || undefined,
      queryType,
      requestId,
      sessionId: session.sessionId,
      sessionToken: session.sessionToken,
    });
  } catch (error) {
    // Refused by the library itself (closed meanwhile): nothing was sent.
    card.fail(error);
    settle(card, session.conversation);
    return;
  }
  questionInput.value = "";
  card.element.scrollIntoView({ block: "nearest" });
  updateControls();
  await follow(run, card, session.conversation);
}

async function follow(run, card, conversation) {
  run.result.catch(() => {}); // awaited below; this only keeps it from being reported as unhandled
  try {
    for await (const frame of run) {
      card.frame(frame);
      if (conversation && !conversation.sessionId && run.sessionId) {
        conversation.sessionId = run.sessionId;
        conversation.heading.textContent = `Conversation ${run.sessionId}`;
      }
      if (run.sessionToken) state.sessionToken = run.sessionToken;
    }
    card.finish(await run.result);
  } catch (error) {
    card.fail(error);
  } finally {
    settle(card, conversation);
  }
}

function settle(card, conversation) {
  // A first question that ended without naming its session lets the next one start it again.
  if (conversation && !conversation.sessionId) conversation.firstPending = false;
  state.runs.delete(card.requestId);
  updateControls();
}

async function start() {
  urlInput.value = defaultUrl();
  form.addEventListener("submit", ask);
  questionInput.addEventListener("keydown", (event) => {
    // Enter asks, Shift+Enter is a new line; not while an input method is composing.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  connectButton.addEventListener("click", async () => {
    showError("");
    try {
      await ensureClient({ force: true });
    } catch (error) {
      showError(`Could not connect: ${error?.message ?? error}`);
    }
  });
  dropButton.addEventListener("click", () => {
    // The library's drop() cuts the socket as a failing network would; a client without one gets
    // its socket closed with 4000, an application code neither side takes for a normal goodbye.
    if (typeof state.client?.drop === "function") state.client.drop();
    else state.socket?.close(4000, "dropped by the playground");
  });
  newConversationButton.addEventListener("click", () => {
    state.conversation = null;
    conversationInput.checked = true;
    updateControls();
    questionInput.focus();
  });
  $("clear-frames").addEventListener("click", () => inspector.clear());
  try {
    state.library = await import("/selador.js");
  } catch (error) {
    setConnection("closed", "The client library is missing");
    showError(`The JavaScript client library could not be loaded from /selador.js (${error?.message ?? error}); the page cannot connect.`);
    return;
  }
  document.body.dataset.ready = "true";
  updateControls();
}

start();
