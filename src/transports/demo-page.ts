// The page served at GET /: a chat on @agentwire/client (its browser bundle, served beside it) that shows the
// connection as it is (resumed, on the SSE fallback, session gone), streams turns with their tools and usage,
// and has a button to drop the connection and watch it resume.

export const DEMO_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agentwire</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }
  h1 { font-size: 1.3rem; margin-bottom: 0.2rem; }
  #bar { display: flex; gap: 0.6rem; align-items: center; font-size: 0.85rem; color: #555; min-height: 2rem; }
  #status::before { content: ""; display: inline-block; width: 0.6rem; height: 0.6rem; border-radius: 50%; margin-right: 0.4rem; background: #bbb; }
  #status[data-state="open"]::before, #status[data-state="resumed"]::before { background: #2a9d3c; }
  #status[data-state="fallback"]::before { background: #d39e00; }
  #status[data-state="reconnecting"]::before, #status[data-state="connecting"]::before { background: #d36b00; }
  #status[data-state="gone"]::before, #status[data-state="closed"]::before { background: #c62828; }
  #log { border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem; min-height: 16rem; overflow-wrap: anywhere; }
  .turn { margin-bottom: 0.9rem; }
  .you { color: #0b5cad; font-weight: 600; white-space: pre-wrap; }
  .you.pending { opacity: 0.6; }
  .you.pending::after { content: " (sending)"; font-weight: normal; font-size: 0.8rem; }
  .bot { white-space: pre-wrap; }
  .tool, .meta, .progress { color: #777; font-size: 0.85rem; }
  .error { color: #c62828; font-size: 0.85rem; }
  .turn[data-status="running"] .meta::after { content: " ..."; }
  form { display: flex; gap: 0.5rem; margin-top: 0.8rem; flex-wrap: wrap; }
  #text { flex: 1; min-width: 12rem; padding: 0.5rem; font: inherit; }
  button { padding: 0.5rem 0.9rem; font: inherit; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>agentwire</h1>
<div id="bar">
  <span id="status" data-state="connecting">connecting...</span>
  <button type="button" id="drop" title="Cut the connection as a network drop would; the client reconnects and resumes">Drop connection</button>
  <button type="button" id="new-session" hidden>New session</button>
</div>
<div id="log"></div>
<form id="form">
  <input id="text" autocomplete="off" placeholder="Ask something, e.g. what is 17 * 23?" autofocus>
  <button id="send">Send</button>
  <button type="button" id="stop">Stop</button>
</form>
<script type="module">
import { AgentwireClient } from "./agentwire-client.js";

const KEY = "agentwire:demo";
const $ = (id) => document.getElementById(id);
const log = $("log"), status = $("status");
const base = new URL(".", location.href).href.replace(/\\/$/, "");
let client = null, running = null, wasDown = false, typed = null;

const el = (tag, cls, text) => { const e = document.createElement(tag); e.className = cls; if (text) e.textContent = text; return e; };
const show = (state, text) => { status.dataset.state = state; status.textContent = text; };

function renderTurn(turn, typed) {
  const box = el("div", "turn"), you = el("div", "you", typed || ""), bot = el("div", "bot"), meta = el("div", "meta");
  if (typed) you.classList.add("pending");
  let text = el("span", "text"), progress = null;
  bot.append(text);
  box.append(you, bot, meta);
  box.dataset.status = "pending";
  log.append(box);
  turn.on("event", (e) => {
    if (e.type === "turn_start") { you.textContent = e.input; you.classList.remove("pending"); box.dataset.turn = e.turn; box.dataset.status = "running"; running = turn; }
    else if (e.type === "token") text.textContent += e.text;
    else if (e.type === "progress") { progress ??= box.insertBefore(el("div", "progress"), meta); progress.textContent = e.stage === "queued" ? "waiting for a free slot: " + e.position + " ahead" + (e.etaMs ? ", about " + Math.ceil(e.etaMs / 1000) + " s" : "") : e.message || e.stage; }
    else if (e.type === "tool" && e.phase === "ready") bot.append(el("div", "tool", "calls " + e.name + " " + JSON.stringify(e.args)));
    else if (e.type === "tool" && e.phase === "result") { bot.append(el("div", "tool", "-> " + JSON.stringify(e.output))); text = el("span", "text"); bot.append(text); }
    else if (e.type === "usage") meta.textContent = e.inputTokens + " in / " + e.outputTokens + " out" + (e.partial ? " (partial)" : "");
    else if (e.type === "error") box.insertBefore(el("div", "error", "error " + e.code + ": " + e.message), meta);
    else if (e.type === "turn_end") { box.dataset.status = e.status; meta.textContent += (meta.textContent ? " - " : "") + e.status + ": " + e.reason; progress?.remove(); if (running === turn) running = null; }
  });
  turn.done.catch((err) => { box.dataset.status = "refused"; you.classList.remove("pending"); box.insertBefore(el("div", "error", "not sent: " + err.code + " " + err.message), meta); });
}

function start() {
  log.textContent = "";
  $("new-session").hidden = true;
  const stored = JSON.parse(sessionStorage.getItem(KEY) || "null");
  // After a reload, replay the session's whole log (from seq 0) so the page shows the conversation again.
  const session = stored ? { sessionId: stored.sessionId, token: stored.token, lastSeq: 0 } : undefined;
  client = new AgentwireClient({ url: base, storeKey: KEY, session, pingIntervalMs: 2000, deadAfterMs: 5000, reconnect: { baseMs: 250, maxMs: 5000 } });
  // send() announces its turn at once, before the server has it: typed is what the user just sent.
  client.on("turn", (turn) => { renderTurn(turn, turn.messageId ? typed : null); typed = null; });
  client.on("recovered", () => { client.snapshot().then((s) => log.prepend(el("div", "meta", "(earlier history is no longer in the log: " + s.history.length + " messages kept on the server)"))); });
  client.on("state", (s) => {
    if (s.status === "open") show(wasDown ? "resumed" : "open", (wasDown ? "resumed" : "connected") + " - " + client.sessionId);
    else if (s.status === "fallback") show("fallback", "connected over SSE (WebSocket unavailable) - " + client.sessionId);
    else if (s.status === "reconnecting") { wasDown = true; show("reconnecting", "reconnecting..."); }
    else if (s.status === "closed" && s.reason && (s.reason.code === 4404 || s.reason.code === 4410)) { show("gone", "session gone: it ended or the server forgot it"); $("new-session").hidden = false; }
    else if (s.status === "closed") show("closed", "closed: " + (s.reason ? s.reason.code + " " + s.reason.message : ""));
    else show("connecting", "connecting...");
  });
  client.connect().catch(() => {});
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("text"), text = input.value.trim();
  if (!text || !client) return;
  input.value = "";
  // A running turn is interrupted: typing again means "never mind, do this".
  typed = text;
  client.send(text, { interrupt: running !== null });
});
$("stop").addEventListener("click", () => running?.cancel().catch(() => {}));
$("drop").addEventListener("click", () => client?.dropConnection());
$("new-session").addEventListener("click", () => { sessionStorage.removeItem(KEY); wasDown = false; start(); });
start();
</script>
</body>
</html>
`;
