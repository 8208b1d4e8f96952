// Dashboard actions (actions.py): shown only when the monitor has tokens; a signed-in user
// gets buttons for what the fleet has. Text goes in with textContent only, never as HTML.
"use strict";
(() => {
  let csrf = null;
  const section = document.createElement("section");
  section.id = "actions";
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };
  const result = el("div", { id: "action-result", className: "muted" });

  async function post(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body),
                                  credentials: "same-origin" });
    return { status: r.status, data: await r.json().catch(() => ({})) };
  }

  async function act(body) {
    const { status, data } = await post("/api/action", body);
    result.textContent = status === 200 ? `${body.action} ${body.bot}: done`
                                        : `${body.action} ${body.bot}: ${data.error || status}`;
    result.dataset.status = String(status);
  }

  function button(action, bot, label, extra = {}) {
    const b = el("button", { textContent: label, type: "button" });
    b.dataset.action = action;
    b.dataset.target = extra.worker === undefined ? bot : `${bot}:${extra.worker}`;
    b.addEventListener("click", () => act({ action, bot, ...extra }));
    return b;
  }

  function signIn() {
    const input = el("input", { id: "token", type: "password", placeholder: "token" });
    const go = el("button", { id: "sign-in", type: "button", textContent: "sign in" });
    go.addEventListener("click", async () => {
      const { status, data } = await post("/api/login", { token: input.value });
      if (status === 200) { csrf = data.csrf; drawn = ""; await draw(); }
      else result.textContent = data.error || `sign-in failed (${status})`;
    });
    section.replaceChildren(el("h2", { textContent: "Actions" }), input, go, result);
  }

  let drawn = "";
  async function draw() {
    const status = await (await fetch("/api/status", { cache: "no-store" })).json();
    const shape = JSON.stringify(Object.entries(status.bots).map(
      ([name, b]) => [name, b.workers.map((w) => w.slot)]));
    if (shape === drawn) return;
    drawn = shape;
    const rows = [];
    for (const [name, b] of Object.entries(status.bots)) {
      const count = el("input", { type: "number", min: 0, value: b.desired, className: "count" });
      count.dataset.bot = name;
      const pin = el("button", { type: "button", textContent: "pin" });
      pin.dataset.action = "pin";
      pin.dataset.target = name;
      pin.addEventListener("click", () => act({ action: "pin", bot: name,
                                                 count: Number(count.value) }));
      rows.push(el("div", { className: "bot-actions" }, el("b", { textContent: name }), " ",
        button("restart", name, "restart"), button("stop", name, "stop"),
        button("start", name, "start"), count, pin, button("unpin", name, "unpin")));
      for (const w of b.workers) {
        rows.push(el("div", { className: "worker-actions" }, `  ${name}:${w.slot} `,
          button("restart_worker", name, "restart worker", { worker: w.slot })));
      }
    }
    section.replaceChildren(el("h2", { textContent: "Actions" }), ...rows, result);
  }

  async function start() {
    const state = await (await fetch("/api/actions", { cache: "no-store" })).json();
    if (!state.enabled) return;  // read-only dashboard: no actions at all
    (document.querySelector("main > div") || document.body).append(section);
    if (state.signed_in) { csrf = state.signed_in.csrf; await draw(); } else signIn();
    setInterval(() => { if (csrf) draw().catch(() => {}); }, 2000);
  }
  start().catch((e) => { result.textContent = `actions unavailable: ${e.message}`; });
})();
