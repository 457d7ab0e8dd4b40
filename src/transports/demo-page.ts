// The page served at GET /: a minimal browser client that chats over the WebSocket, cancels, and resumes.

export const DEMO_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agentwire</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }
  h1 { font-size: 1.3rem; margin-bottom: 0.2rem; }
  #status { color: #666; font-size: 0.85rem; }
  #log { border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem; min-height: 16rem; white-space: pre-wrap; }
  .you { color: #0b5cad; font-weight: 600; }
  .tool, .meta { color: #777; font-size: 0.85rem; }
  form { display: flex; gap: 0.5rem; margin-top: 0.8rem; }
  input { flex: 1; padding: 0.5rem; font: inherit; }
  button { padding: 0.5rem 0.9rem; font: inherit; }
</style>
</head>
<body>
<h1>agentwire</h1>
<div id="status">connecting...</div>
<div id="log"></div>
<form id="form">
  <input id="text" autocomplete="off" placeholder="Ask something, e.g. what is 17 * 23?" autofocus>
  <button>Send</button>
  <button type="button" id="cancel">Stop</button>
</form>
<script>
const log = document.getElementById("log");
const status = document.getElementById("status");
let session = null, ws = null, lastSeq = 0, current = null, retry = 250;
const add = (cls, text) => { const el = document.createElement("div"); el.className = cls; el.textContent = text; log.append(el); return el; };
function send(message) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(message)); }
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(scheme + "://" + location.host + "/v1/sessions/" + session.sessionId + "/ws?afterSeq=" + lastSeq, ["agentwire.v1", "bearer." + session.token]);
  ws.onopen = () => { status.textContent = "connected to " + session.sessionId; retry = 250; };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (typeof m.seq === "number") { if (m.seq <= lastSeq) return; lastSeq = m.seq; }
    if (m.type === "turn_start") current = add("bot", "");
    else if (m.type === "token" && current) current.textContent += m.text;
    else if (m.type === "tool" && (m.phase === "ready" || m.phase === "result")) {
      add("tool", m.phase === "ready" ? "calls " + m.name + " " + JSON.stringify(m.args) : "-> " + JSON.stringify(m.output));
      // Text after a tool result continues below it, in the order it was produced.
      if (m.phase === "result") current = add("bot", "");
    }
    else if (m.type === "usage") add("meta", m.inputTokens + " in / " + m.outputTokens + " out" + (m.partial ? " (partial)" : ""));
    else if (m.type === "turn_end") { add("meta", m.status + ": " + m.reason); current = null; }
    else if (m.type === "error") add("meta", "error " + m.code + ": " + m.message);
  };
  ws.onclose = (e) => {
    // 4000-4399 and network drops: reconnect and resume from the last seq; 4400-4499: stop.
    if (e.code >= 4400 && e.code <= 4499) { status.textContent = "closed: " + e.code + " " + e.reason; return; }
    status.textContent = "reconnecting...";
    setTimeout(connect, retry = Math.min(retry * 2, 5000));
  };
}
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  if (!input.value.trim()) return;
  add("you", input.value);
  send({ type: "input", text: input.value, interrupt: true });
  input.value = "";
};
document.getElementById("cancel").onclick = () => send({ type: "cancel" });
fetch("/v1/sessions", { method: "POST" }).then((r) => r.json()).then((s) => { session = s; connect(); },
  (err) => { status.textContent = "cannot create a session: " + err; });
</script>
</body>
</html>
`;
