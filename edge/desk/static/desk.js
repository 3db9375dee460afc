/* Tessera cash desk: the few fetch calls behind the server-rendered screens. No framework,
 * nothing loaded from outside. Element ids are listed in edge/desk_web.py's docstring.
 * A barcode scanner in keyboard mode types into the focused scan field and ends with Enter,
 * which submits that field's form. */
"use strict";

const T = JSON.parse(document.getElementById("i18n").textContent);
const $ = (id) => document.getElementById(id);
const STATUS_EVERY_MS = 1000;  // the sync loop knows within 3 s that the hub is gone or back (live channel)
const LANG = document.documentElement.lang === "en" ? "en" : "de";
const TZ = document.body.dataset.tz || "Europe/Berlin";
const CART_KEY = "desk-cart";
// the sale in progress of the sell and subscription screens: emptied at login and logout
const SALE_KEYS = [CART_KEY, "desk-subscription", "desk-subscription-done", "desk-vouchers", "desk-vouchers-done"];
const MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/* A keyboard-wedge scanner types a code (digits and capitals, 16 or more) far faster than a person
 * and ends it with Enter. A burst of code symbols that fast on average (a busy machine may stall a
 * key or two, so not each gap), then Enter, is a scan; a person typing a name or a terminal
 * reference never is. Wherever the focus is, the burst's keys are taken back out of the field they
 * landed in and `onScan(code)` gets the code. Keys typed into `skip` (a screen's own scan field,
 * whose form takes the code) are left alone. The subscription and voucher screens use it. */
const SCAN_GAP_MS = 35, SCAN_PAUSE_MS = 400, SCAN_MIN = 16;

function watchScanBursts(onScan, skip = null) {
  let burst = "", first = 0, last = 0, field = null, before = null;
  document.addEventListener("keydown", (ev) => {
    const now = performance.now();
    if (skip && ev.target === skip) { burst = ""; return; }
    if (ev.key === "Enter") {
      const fast = burst.length >= SCAN_MIN && (last - first) / (burst.length - 1) <= SCAN_GAP_MS;
      const code = burst;
      burst = "";
      if (!fast || now - last > SCAN_PAUSE_MS) return;
      ev.preventDefault();
      ev.stopPropagation();
      if (field && before !== null) field.value = before;  // the code is not a name, a reference or an amount
      onScan(code);
      return;
    }
    if (ev.key.length !== 1 || ev.ctrlKey || ev.altKey || ev.metaKey) return;  // Shift of a capital, ...
    if (!/^[0-9A-Z]$/.test(ev.key)) { burst = ""; return; }
    if (!burst || now - last > SCAN_PAUSE_MS) {
      burst = "";
      first = now;
      field = ev.target instanceof HTMLInputElement ? ev.target : null;
      before = field ? field.value : null;
    }
    burst += ev.key;
    last = now;
  }, true);
}

/* Dates are formatted here, in the venue's time zone, never by the browser's locale (a desk
 * browser set to en-US would show mm/dd/yyyy): de 02.12.2026 (as the office, the receipts and the
 * personalization page write it), en 2 Dec 2026. */
function dateParts(iso) {
  const plain = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  if (plain) return { y: +plain[1], m: +plain[2], d: +plain[3], time: "" };
  const parts = {};
  new Intl.DateTimeFormat("en-US", { timeZone: TZ, year: "numeric", month: "numeric", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" })
    .formatToParts(new Date(iso)).forEach((p) => { parts[p.type] = p.value; });
  return { y: +parts.year, m: +parts.month, d: +parts.day, time: `${parts.hour}:${parts.minute}:${parts.second}` };
}

function formatDate(iso) {
  if (!iso) return "";
  const p = dateParts(iso);
  const two = (n) => String(n).padStart(2, "0");
  return LANG === "en" ? `${p.d} ${MONTHS_EN[p.m - 1]} ${p.y}` : `${two(p.d)}.${two(p.m)}.${p.y}`;
}

/** "2.12.1990", "2 Dec 1990", "1990-12-02" -> "1990-12-02"; null if not a real date. No
 * slashes: 02/12 means February to some and December to others. */
function parseDate(text) {
  const t = (text || "").trim();
  let y, m, d, found;
  if ((found = /^(\d{1,2})\.(\d{1,2})\.(\d{4})$/.exec(t))) [d, m, y] = [+found[1], +found[2], +found[3]];
  else if ((found = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(t))) [y, m, d] = [+found[1], +found[2], +found[3]];
  else if ((found = /^(\d{1,2})\.?\s+([A-Za-zäÄ]{3,})\.?\s+(\d{4})$/.exec(t))) {
    const name = found[2].slice(0, 3).toLowerCase().replace("mär", "mar").replace("mai", "may")
      .replace("okt", "oct").replace("dez", "dec");
    m = MONTHS_EN.findIndex((mon) => mon.toLowerCase() === name) + 1;
    [d, y] = [+found[1], +found[3]];
  } else return null;
  const date = new Date(Date.UTC(y, m - 1, d));
  if (!m || date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) return null;
  return `${y}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
}

function eur(cents) {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  const euros = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  return `${sign}${euros},${String(abs % 100).padStart(2, "0")} €`;
}

/** "50", "50,5", "50.50", "1.234,50" -> cents; null if not an amount. */
function parseCents(text) {
  let t = (text || "").trim().replace(/\s|€/g, "");
  if (!t) return null;
  if (t.includes(",")) t = t.replace(/\./g, "").replace(",", ".");
  if (!/^\d+(\.\d{1,2})?$/.test(t)) return null;
  return Math.round(parseFloat(t) * 100);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(method, path, body) {
  const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  // every state change is a JSON request: the desk refuses anything else (edge/browser_door.py)
  if (body === undefined && method !== "GET") body = {};
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    if (resp.status === 401 && data.type === "urn:tessera:problem:unauthorized") location.href = "/";
    // the desk's own language when the server said it (PIN and voucher refusals carry detail_de)
    const text = (document.documentElement.lang === "de" && data.detail_de) || data.detail;
    const err = new Error(text || `${resp.status}`);
    err.status = resp.status;
    err.data = data;
    throw err;
  }
  return data;
}

function message(text, kind = "error") {
  const box = $("message");
  if (!text) { box.hidden = true; box.textContent = ""; box.className = "message"; return; }
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = false;
}

/** Hide the banner if it shows an error (a confirmation stays until the next one). */
function clearError() {
  if ($("message").classList.contains("error")) message(null);
}

function printText(outcome) {
  if (!outcome) return "";
  if (outcome.state === "printed") return T.printed;
  if (outcome.state === "failed") return `${T.failed}: ${outcome.error}`;
  return T.queued;
}

/* --- status bar ------------------------------------------------------------------------ */

function localTime(iso) {
  if (!iso) return T.never;
  return `${formatDate(iso)} ${dateParts(iso).time}`;
}

async function refreshStatus() {
  try {
    const s = await api("GET", "/api/status");
    const online = $("status-online");
    online.textContent = s.online ? T.online : T.offline;
    online.dataset.online = String(s.online);
    online.className = `pill ${s.online ? "pill-online" : "pill-offline"}`;
    online.title = s.last_error || "";
    $("status-waiting").textContent = `${s.ops_waiting} ${T.waiting}`;
    $("status-waiting").className = `pill ${s.ops_waiting ? "pill-warn" : ""}`;
    $("status-last-sync").textContent = `${T.last_sync}: ${localTime(s.last_sync_at)}`;
    showClock(s.clock);
    const errors = Object.values(s.printer_errors || {});
    const printPill = $("status-print");
    if (errors.length || s.print_queue.failed) {
      printPill.textContent = `${T.print_failed} (${s.print_queue.failed})`;
      printPill.title = errors.join("\n");
      printPill.className = "pill pill-offline";
    } else {
      printPill.textContent = s.print_queue.queued ? `${s.print_queue.queued} ${T.queued}` : T.print_ok;
      printPill.title = "";
      printPill.className = "pill";
    }
  } catch (err) {
    const online = $("status-online");
    online.textContent = "?";
    online.className = "pill pill-offline";
  }
}

function showClock(clock) {
  /* The system clock's error either way (trusted time): a desk whose clock runs ahead sells on the hub's time */
  const pill = $("status-clock");
  if (!clock || clock.using === "system") { pill.hidden = true; return; }
  const off = clock.clock_offset_seconds;
  const mins = Math.round(Math.abs(off) / 60);
  const amount = mins >= 2880 ? `${Math.round(mins / 1440)} d` : mins >= 120 ? `${Math.round(mins / 60)} h` : `${mins} min`;
  pill.textContent = `${off > 0 ? T.clock_ahead : T.clock_behind} ${amount}`;
  pill.title = clock.using === "hub+monotonic" ? T.clock_uses : "";
  pill.dataset.offset = String(off);
  pill.hidden = false;
}

function initHeader() {
  refreshStatus();
  setInterval(refreshStatus, STATUS_EVERY_MS);
  const logout = $("logout-button");
  if (logout) logout.addEventListener("click", async () => {
    SALE_KEYS.forEach((k) => sessionStorage.removeItem(k));  // the next cashier starts with an empty cart
    await api("POST", "/api/logout").catch(() => {});
    location.href = "/";
  });
}

/* --- login ------------------------------------------------------------------------------ */

function initLogin() {
  SALE_KEYS.forEach((k) => sessionStorage.removeItem(k));  // logged out (or timed out): nothing carries over
  let operatorId = null;
  const pin = $("pin-input");
  const tiles = document.querySelectorAll("[data-testid=operator-tile]");
  const select = (tile) => {
    tiles.forEach((t) => t.classList.toggle("selected", t === tile));
    operatorId = tile.dataset.operatorId;
    $("login-who").textContent = tile.dataset.operatorName;
    $("login-error").textContent = "";
    pin.value = "";
    pin.focus();
  };
  tiles.forEach((tile) => tile.addEventListener("click", () => select(tile)));
  if (tiles.length === 1) select(tiles[0]);
  document.querySelectorAll(".key[data-key]").forEach((key) => key.addEventListener("click", () => {
    if (pin.value.length < 8) pin.value += key.dataset.key;
    pin.focus();
  }));
  $("pin-clear").addEventListener("click", () => { pin.value = ""; pin.focus(); });
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!operatorId) { $("login-error").textContent = T.choose_operator; return; }
    try {
      await api("POST", "/api/login", { operator_id: operatorId, pin: pin.value });
      location.href = document.querySelector(".login").dataset.home;
    } catch (err) {
      $("login-error").textContent = err.message;
      pin.value = "";
      pin.focus();
    }
  });
}

/* --- sell ------------------------------------------------------------------------------- */

function initSell() {
  const cart = [];  // {kind, productId, name, price, quantity, holders: [names]}
  let customer = null;
  let searchTimer = null;
  let lastProblem = null;  // the refusal of check() the banner shows, to clear it once fixed

  const total = () => cart.reduce((sum, l) => sum + l.price * l.quantity, 0);
  // cash may be taken without an amount typed (no change shown); card needs the terminal's reference
  const pay = PaymentBlock({ due: total, onChange: () => changed(), cashNeedsGiven: false });

  /* The cart lives in sessionStorage, so a language switch or a look at another tab keeps
   * it; a sale, "new sale" and logging out empty it. */
  function save() {
    sessionStorage.setItem(CART_KEY, JSON.stringify({ cart, customer, ...pay.kept() }));
  }

  function restore() {
    let kept = null;
    try { kept = JSON.parse(sessionStorage.getItem(CART_KEY) || "null"); } catch (err) { kept = null; }
    if (!kept || !Array.isArray(kept.cart)) return;
    const tiles = new Set([...document.querySelectorAll("[data-testid=product-tile], [data-testid=voucher-tile]")]
      .map((t) => `${t.dataset.kind}:${t.dataset.productId}`));
    // only what this desk still sells (a product taken off sale in the meantime is dropped)
    kept.cart.filter((l) => tiles.has(`${l.kind}:${l.productId}`)).forEach((l) => cart.push(l));
    pay.restore(kept);
    if (kept.customer) chooseCustomer(kept.customer);
  }

  function changed() {
    save();
    if (lastProblem) {  // the banner names a problem: take it away once fixed, or name the next one
      const problem = check();
      if (problem !== lastProblem) { lastProblem = problem; message(problem); }
    } else clearError();
  }

  function add(tile) {
    const { kind, productId, name, price } = tile.dataset;
    let line = cart.find((l) => l.kind === kind && l.productId === productId);
    if (!line) {
      line = { kind, productId, name, price: Number(price), quantity: 0, holders: [] };
      cart.push(line);
    }
    setQuantity(line, line.quantity + 1);
    render();
    if (kind === "annual") {
      const inputs = document.querySelectorAll(`[data-testid=cart-line][data-kind=annual][data-product-id="${productId}"] [data-testid=holder-name]`);
      if (inputs.length) inputs[inputs.length - 1].focus();
    }
  }

  function setQuantity(line, n) {
    line.quantity = Math.max(0, Math.min(20, n));
    while (line.holders.length < line.quantity) line.holders.push("");
    line.holders.length = line.quantity;
    if (line.quantity === 0) cart.splice(cart.indexOf(line), 1);
  }

  function render() {
    const box = $("cart");
    box.replaceChildren();
    if (!cart.length) box.append(el("p", { class: "hint", text: T.cart_empty }));
    let holderNo = 0;  // numbered across the cart: two products with one card each are 1 and 2
    cart.forEach((line) => {
      const head = el("div", { class: "cart-head" },
        el("span", { class: "cart-name", text: (line.kind === "voucher" ? `${T.voucher}: ` : "") + line.name }),
        el("button", { type: "button", class: "btn", "data-testid": "qty-minus", text: "−",
          onclick: () => { setQuantity(line, line.quantity - 1); render(); } }),
        el("span", { class: "qty", "data-testid": "qty", text: String(line.quantity) }),
        el("button", { type: "button", class: "btn", "data-testid": "qty-plus", text: "+",
          onclick: () => { setQuantity(line, line.quantity + 1); render(); } }),
        el("button", { type: "button", class: "btn btn-danger", "data-testid": "remove-line", text: "✕",
          "aria-label": T.remove_line, onclick: () => { setQuantity(line, 0); render(); } }));
      const row = el("div", { class: "cart-line", "data-testid": "cart-line", "data-kind": line.kind,
        "data-product-id": line.productId }, head);
      if (line.kind === "annual") {
        line.holders.forEach((name, k) => {
          holderNo += 1;
          row.append(el("input", { class: "field field-holder", type: "text", maxlength: "200", value: name,
            placeholder: `${T.holder_name} ${holderNo}`, "aria-label": `${T.holder_name} ${holderNo}`,
            "data-testid": "holder-name", oninput: (ev) => { line.holders[k] = ev.target.value; changed(); } }));
        });
      }
      box.append(row);
    });
    $("total").textContent = eur(total());
    $("total").dataset.cents = String(total());
    $("sell-button").disabled = !cart.length;
    pay.update();
    changed();
  }

  function orderBody() {
    const body = { lines: cart.map((l) => (l.kind === "annual"
      ? { product_id: l.productId, kind: "annual", quantity: l.quantity,
          holders: l.holders.map((name) => ({ name: name.trim() })) }
      : { product_id: l.productId, kind: "voucher", quantity: l.quantity })), ...pay.fields() };
    if (customer) body.customer_id = customer.id;
    return body;
  }

  function check() {
    if (cart.some((l) => l.kind === "annual" && l.holders.some((h) => !h.trim()))) return T.holders_missing;
    return pay.problem();
  }

  function showResult(data, paidBy) {
    sessionStorage.removeItem(CART_KEY);  // sold: the cart is done
    $("sell-form").hidden = true;
    document.querySelector(".products").hidden = true;
    $("sale-result").hidden = false;
    $("sale-number").textContent = data.order.number;
    $("sale-change").textContent = eur(data.change_cents);
    $("sale-change-row").hidden = paidBy !== "cash";  // no "change 0,00 €" after a card payment
    $("sale-receipt").textContent = printText(data.receipt);
    const list = $("sale-cards");
    list.replaceChildren();
    data.order.items.forEach((item) => {
      if (!item.card) return;
      const what = item.kind === "voucher" ? `${T.voucher} ${item.card.number} · ${item.product}`
        : `${item.card.number} · ${item.card.holder_name} · ${item.product}`;
      list.append(el("li", { "data-testid": "sale-card", "data-card-number": item.card.number, text: what }));
    });
    const failed = data.printing.filter((o) => o.state === "failed");
    if (failed.length) message(failed.map((o) => o.error).join(" · "));
    else message(null);
    $("new-sale").focus();
  }

  document.querySelectorAll("[data-testid=product-tile], [data-testid=voucher-tile]")
    .forEach((tile) => tile.addEventListener("click", () => add(tile)));
  $("sell-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const problem = check();
    lastProblem = problem;
    if (problem) { message(problem); return; }
    $("sell-button").disabled = true;
    const paidBy = pay.method();
    try {
      showResult(await api("POST", "/api/orders", orderBody()), paidBy);
      refreshStatus();
    } catch (err) {
      message(err.message);
      $("sell-button").disabled = false;
    }
  });
  /* optional customer: search as the cashier types, tap a result */
  function chooseCustomer(c) {
    customer = c;
    $("customer-results").replaceChildren();
    $("customer-search").value = "";
    $("customer-search").hidden = !!c;
    $("customer-chosen-row").hidden = !c;
    $("customer-chosen").textContent = c ? customerText(c) : "";
    save();
  }
  function customerText(c) {
    return `${c.last_name}, ${c.first_name} · ${c.number}` + (c.town ? ` · ${c.town}` : "");
  }
  async function searchCustomers() {
    const q = $("customer-search").value.trim();
    const box = $("customer-results");
    if (q.length < 2) { box.replaceChildren(); return; }
    try {
      const found = await api("GET", `/api/customers?q=${encodeURIComponent(q)}`);
      if (q !== $("customer-search").value.trim()) return;  // a newer search is on its way
      box.replaceChildren(...(found.length ? found.map((c) => el("button", {
        type: "button", class: "btn customer-result", "data-testid": "customer-result", "data-customer-id": c.id,
        text: customerText(c), onclick: () => chooseCustomer(c) })) : [el("p", { class: "hint", text: T.customer_none })]));
      clearError();
    } catch (err) {
      message(err.message);
    }
  }
  $("customer-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchCustomers, 250);
  });
  $("customer-search").addEventListener("keydown", (ev) => { if (ev.key === "Enter") ev.preventDefault(); });
  $("customer-clear").addEventListener("click", () => chooseCustomer(null));

  $("new-sale").addEventListener("click", () => {
    cart.length = 0;
    pay.reset();
    chooseCustomer(null);
    lastProblem = null;
    render();
    sessionStorage.removeItem(CART_KEY);
    message(null);
    $("sale-result").hidden = true;
    $("sell-form").hidden = false;
    document.querySelector(".products").hidden = false;
  });
  restore();
  render();
}

/* --- counter: voucher -> card ------------------------------------------------------------ */

function initCounter() {
  let code = null;
  let cardId = null;
  const scan = $("voucher-scan");
  const reset = () => {
    code = cardId = null;
    scan.value = "";
    $("holder-name").value = "";
    $("holder-birth").value = "";
    $("holder-form").hidden = true;
    $("redeem-result").hidden = true;
    $("voucher-form").hidden = false;
    $("handover-button").disabled = false;
    message(null);
    scan.focus();
  };
  $("voucher-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = scan.value.trim();
    if (!text) return;
    try {
      const v = await api("GET", `/api/vouchers/check?code=${encodeURIComponent(text)}`);
      code = text;
      message(null);
      $("voucher-product").textContent = v.product;
      $("holder-form").hidden = false;
      $("holder-name").focus();
    } catch (err) {
      message(err.message);
      $("holder-form").hidden = true;
      scan.select();
    }
  });
  $("holder-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const holder = { name: $("holder-name").value.trim() };
    if (!holder.name) { message(T.holders_missing); return; }
    const birth = $("holder-birth").value.trim();
    if (birth) {
      holder.birth_date = parseDate(birth);
      if (!holder.birth_date) { message(T.date_invalid); $("holder-birth").focus(); return; }
    }
    $("redeem-button").disabled = true;
    try {
      const data = await api("POST", "/api/vouchers/redeem", { code, holder });
      cardId = data.card.id;
      $("redeem-card-number").textContent = data.card.number;
      $("redeem-holder").textContent = `${data.card.holder_name} · ${data.card.product}`;
      $("redeem-print").textContent = printText(data.printing[0]);
      if (data.printing.some((o) => o.state === "failed")) message(data.printing.map((o) => o.error).join(" · "));
      else message(null);
      $("holder-form").hidden = true;
      $("voucher-form").hidden = true;
      $("redeem-result").hidden = false;
      $("handover-button").focus();
      refreshStatus();
    } catch (err) {
      message(err.message);
    } finally {
      $("redeem-button").disabled = false;
    }
  });
  $("handover-button").addEventListener("click", async () => {
    try {
      await api("POST", `/api/cards/${cardId}/handed-over`);
      $("redeem-print").textContent = T.handed_over;
      $("handover-button").disabled = true;
      message(`${$("redeem-card-number").textContent}: ${T.handed_over}`, "ok");
      $("counter-reset").focus();
    } catch (err) {
      message(err.message);
    }
  });
  $("counter-reset").addEventListener("click", reset);
  // a refusal of the holder form ("name missing", "date") goes once the cashier corrects it
  $("holder-name").addEventListener("input", clearError);
  $("holder-birth").addEventListener("input", clearError);
  scan.focus();
}

/* --- cards: lookup, reprint, lost card --------------------------------------------------- */

function initCards() {
  const input = $("card-search");
  const kindText = (c) => T[`kind_${c.kind}`] || c.kind;
  const fulfilmentText = (c) => (c.revoked_at ? T.revoked
    : c.fulfilment ? (T[`fulfilment_${c.fulfilment}`] || c.fulfilment) : "");
  /* "Jahreskarte · gedruckt", "Gutschein": kinds and states in words, never the raw "annual" */
  const stateText = (c) => [kindText(c), fulfilmentText(c)].filter(Boolean).join(" · ");
  const validText = (c) => (c.validity_mode === "from_first_entry" && c.kind === "annual" && !c.first_entry_at
    ? T.months_from_first_use.replace("{n}", c.months) : formatDate(c.valid_until));

  /** Look up; keepMessage leaves a confirmation (re-print, lost card, hand-over) standing. */
  async function search(keepMessage = false) {
    const q = input.value.trim();
    if (!q) return;
    try {
      const found = await api("GET", `/api/cards?q=${encodeURIComponent(q)}`);
      const body = $("card-results");
      body.replaceChildren();
      if (!found.cards.length) body.append(el("tr", {}, el("td", { colspan: "6", class: "hint", text: T.no_results })));
      found.cards.forEach((c) => body.append(row(c, found.scan)));
      showVerdict(found.scan);
      if (!keepMessage) message(null);
    } catch (err) {
      message(err.message);
    }
    input.select();
  }

  function showVerdict(scan) {
    /* A scanned code is checked as a gate checks it: forged, superseded or revoked is said in red */
    const box = $("scan-verdict");
    if (!scan) { box.hidden = true; box.textContent = ""; delete box.dataset.reason; return; }
    const said = LANG === "en" ? scan.message_en : scan.message_de;
    const advice = scan.level === "refused" ? T.scan_refused : scan.level === "warn" ? "" : T.scan_ok;
    box.replaceChildren(el("b", { text: said }), advice ? ` ${advice}` : "",
      // the technical detail is English only: a German screen keeps to German
      LANG === "en" && scan.detail && scan.level !== "ok"
        ? el("span", { class: "verdict-detail", text: ` (${scan.detail})` }) : "");
    box.className = `verdict verdict-${scan.level}`;
    box.dataset.reason = scan.reason;
    box.dataset.level = scan.level;
    box.hidden = false;
  }

  function action(label, testid, path, confirmText, cls = "btn") {
    return el("button", { type: "button", class: cls, "data-testid": testid, text: label, onclick: async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      try {
        const data = await api("POST", path);
        const printed = (data.printing || []).map(printText).join(", ");
        message(`${data.card.number}: ${printed || fulfilmentText(data.card)}`,
          (data.printing || []).some((o) => o.state === "failed") ? "error" : "ok");
        await search(true);
        refreshStatus();
      } catch (err) {
        message(err.message);
      }
    } });
  }

  function row(c, scan) {
    const buttons = el("td", {});
    const refused = scan && scan.level === "refused";
    if (c.kind === "annual" && c.fulfilment && !c.revoked_at) {
      buttons.append(action(T.reprint, "reprint", `/api/cards/${c.id}/reprint`));
      buttons.append(action(T.replace, "replace", `/api/cards/${c.id}/replace`, T.confirm_replace, "btn btn-danger"));
      if (c.fulfilment === "printed") buttons.append(action(T.hand_over, "handover", `/api/cards/${c.id}/handed-over`));
    }
    return el("tr", { "data-testid": "card-row", "data-card-id": c.id, "data-card-number": c.number,
      class: refused ? "row-refused" : null },
      el("td", { text: c.number }), el("td", { text: c.holder_name || (c.kind === "voucher" ? T.voucher : "") }),
      el("td", { text: c.product || "" }), el("td", { "data-testid": "card-valid", text: validText(c) }),
      el("td", { "data-testid": "card-state",
        text: stateText(c) + (c.print_state === "failed" ? ` · ${T.failed}` : "") }), buttons);
  }

  $("card-search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
  if (input.value) search();
  input.focus();
}

/* --- summary: the day typed in the desk's own date format ------------------------------------- */

function initSummary() {
  const shown = $("summary-day");
  shown.value = formatDate($("summary-day-iso").value);
  $("summary-form").addEventListener("submit", (ev) => {
    const day = parseDate(shown.value);
    if (!day) { ev.preventDefault(); message(T.date_invalid); shown.focus(); return; }
    $("summary-day-iso").value = day;
  });
  const form = $("drawer-form");  // the cash drawer: only on today's summary
  if (form) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const cents = parseCents($("drawer-amount").value);
      if (cents === null) { message(T.drawer_amount_invalid); $("drawer-amount").focus(); return; }
      try {
        await api("POST", "/api/cash", { kind: $("drawer-kind").value, amount_cents: cents,
                                         note: $("drawer-note").value.trim() || null });
        sessionStorage.setItem("desk-message", JSON.stringify([T.drawer_done, "ok"]));
        location.reload();
      } catch (err) {
        message(err.message);
      }
    });
  }
  const kept = sessionStorage.getItem("desk-message");
  if (kept) {
    sessionStorage.removeItem("desk-message");
    message(...JSON.parse(kept));
  }
}

/* --- print queue ------------------------------------------------------------------------- */

function initPrintQueue() {
  const retry = async (jobIds) => {
    try {
      const data = await api("POST", "/api/print-jobs/retry", jobIds ? { job_ids: jobIds } : {});
      const failed = data.printing.filter((o) => o.state === "failed");
      sessionStorage.setItem("desk-message", JSON.stringify(failed.length
        ? [failed.map((o) => o.error).join(" · "), "error"] : [`${data.printing.length} ${T.printed}`, "ok"]));
      location.reload();
    } catch (err) {
      message(err.message);
    }
  };
  $("retry-all").addEventListener("click", () => retry(null));
  $("print-refresh").addEventListener("click", () => location.reload());
  document.querySelectorAll("[data-testid=retry-job]").forEach((b) =>
    b.addEventListener("click", () => retry([b.dataset.jobId])));
  const kept = sessionStorage.getItem("desk-message");
  if (kept) {
    sessionStorage.removeItem("desk-message");
    message(...JSON.parse(kept));
  }
}

initHeader();
({ login: initLogin, sell: initSell, counter: initCounter, cards: initCards, print_queue: initPrintQueue,
  summary: initSummary })[
  document.body.dataset.page]?.();
