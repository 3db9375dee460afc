/* Tessera cash desk: choice vouchers (Wahlgutscheine) redeemed for one seat ticket from this desk's
 * own pool, so it works with the hub away. Loaded after desk.js and uses its helpers ($, el, api,
 * message, clearError, eur, formatDate, dateParts, printText, refreshStatus, T, LANG) and payment.js's
 * PaymentBlock (cash or card, the amount given, the change).
 * The JSON API is edge/desk/vouchers_api.py; every rule (the vouchers' state and offer, the seat in
 * this desk's pool, the split, the refusals) is decided there, this script only walks the cashier
 * through it:
 *
 *   scan vouchers (the list grows) -> a performance every voucher is valid for -> a price zone and
 *   a free seat -> the rule (by value / as payment) -> the split (the server's quote) -> the rest
 *   paid cash or card -> redeemed: receipt and ticket printed
 *
 * A scanner in keyboard mode types the code and Enter: into the scan field, or anywhere on the page
 * (a burst of code symbols far faster than a person types), and the voucher joins the list. */
"use strict";

(function voucherRedemption() {
  const KEY = "desk-vouchers";  // the redemption in progress, kept across a language switch (desk.js clears it)
  const DONE_KEY = "desk-vouchers-done";  // the result shown, until "next"
  const NUMBER_MAX = 40;  // a typed number is short (WG-2026-000001); a scanned signed code is long
  const MAX_VOUCHERS = 10;  // as the API's body
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? ""));
  const when = (iso) => `${formatDate(iso)} ${dateParts(iso).time.slice(0, 5)}`;

  const S = {
    vouchers: [],  // {ref: {code} | {number}, v: the desk's view of the voucher}
    perf: null, seats: [], zone: null, seat: null, rule: "value", quote: null, busy: false,
  };
  // cash or card for the rest the vouchers leave (payment.js), cash with the amount given
  const pay = PaymentBlock({ due: () => (S.quote ? S.quote.rest_cents : 0), onChange: () => save() });

  const refOf = (text) => (text.length > NUMBER_MAX ? { code: text } : { number: text });
  const seatText = (s) => `${s.section}, ${T.cv_row} ${s.row_label}, ${T.cv_seat_short} ${s.label}`;

  /* --- keeping the redemption over a page load ----------------------------------------------- */

  function save() {
    sessionStorage.setItem(KEY, JSON.stringify({
      refs: S.vouchers.map((x) => x.ref), perf: S.perf, zone: S.zone, seat: S.seat?.seat_id || null,
      rule: S.rule, ...pay.kept() }));
  }

  async function restore() {
    const done = JSON.parse(sessionStorage.getItem(DONE_KEY) || "null");
    if (done) { showResult(done.data, done.paidBy); return; }
    const kept = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (!kept) { render(); return; }
    for (const ref of kept.refs || []) {
      try {
        S.vouchers.push({ ref, v: await api("GET", `/api/choice-vouchers?${new URLSearchParams(ref)}`) });
      } catch (err) { message(err.message); }
    }
    setRule(kept.rule === "payment" ? "payment" : "value");
    pay.restore(kept);
    save();  // setRule above saved before the amount was back
    render();
    if (kept.perf && commonOffer().some((p) => p.id === kept.perf)) {
      await choosePerf(kept.perf, kept.zone);
      const seat = S.seats.find((s) => s.seat_id === kept.seat);
      if (seat) await chooseSeat(seat);
    }
  }

  /* --- 1. the vouchers ------------------------------------------------------------------------ */

  async function addVoucher(text) {
    text = (text || "").trim();
    if (!text || S.busy) return;
    if (S.vouchers.length >= MAX_VOUCHERS) { message(fill(T.cv_too_many, { n: MAX_VOUCHERS })); return; }
    const ref = refOf(text);
    try {
      const v = await api("GET", `/api/choice-vouchers?${new URLSearchParams(ref)}`);
      if (S.vouchers.some((x) => x.v.id === v.id)) { message(fill(T.cv_twice, { number: v.number })); return; }
      if (v.state !== "open") {
        message(fill(T.cv_not_open, { number: v.number, state: T[`cv_state_${v.state}`] || v.state }));
        return;
      }
      S.vouchers.push({ ref, v });
      clearError();
      afterVouchersChanged();
    } catch (err) {
      message(err.message);
    } finally {
      $("cv-scan").value = "";
      $("cv-scan").focus();
    }
  }

  function removeVoucher(k) {
    S.vouchers.splice(k, 1);
    afterVouchersChanged();
  }

  function afterVouchersChanged() {
    if (S.perf && !commonOffer().some((p) => p.id === S.perf)) {
      S.perf = null; S.seats = []; S.zone = null; S.seat = null;
    }
    S.quote = null;
    render();
    requote();
  }

  /** The performances every voucher is valid for (each voucher's offer ahead), by date. */
  function commonOffer() {
    if (!S.vouchers.length) return [];
    const [first, ...rest] = S.vouchers.map((x) => x.v.offer);
    return first.filter((p) => rest.every((offer) => offer.some((o) => o.id === p.id)));
  }

  function renderVouchers() {
    const list = $("cv-list");
    if (!S.vouchers.length) { list.replaceChildren(el("li", { class: "hint", text: T.cv_none })); return; }
    list.replaceChildren(...S.vouchers.map(({ v }, k) => el("li", {
      "data-testid": "cv-voucher", "data-number": v.number, "data-state": v.state, class: "cv-voucher" },
    el("span", { class: "cv-v-main" }, el("b", { text: v.number }), ` · ${eur(v.value_cents)}`),
    el("span", { class: "cv-v-more", text: `${v.tier_name || T.cv_full_price} · ` +
      `${fill(T.cv_valid_until, { date: formatDate(v.valid_until) })}` }),
    el("button", { type: "button", class: "btn btn-small", "data-testid": "cv-remove", text: T.cv_remove,
      "aria-label": `${T.cv_remove}: ${v.number}`, onclick: () => removeVoucher(k) }))));
  }

  /* --- 2. the performance, 3. the seat --------------------------------------------------------- */

  function renderPerfs() {
    const offer = commonOffer();
    $("cv-perf-panel").hidden = !S.vouchers.length;
    $("cv-perfs").replaceChildren(...(offer.length ? offer.map((p) => el("button", {
      type: "button", class: `btn toggle cv-perf${p.id === S.perf ? " toggle-on" : ""}`, "data-testid": "cv-perf",
      "data-performance-id": p.id, "aria-pressed": String(p.id === S.perf), onclick: () => choosePerf(p.id) },
    el("span", { class: "cv-when", text: when(p.starts_at) }), el("span", { class: "cv-title", text: p.title })))
      : [el("p", { class: "hint", text: T.cv_no_performance })]));
  }

  async function choosePerf(id, zone = null) {
    S.perf = id; S.seat = null; S.quote = null; S.zone = zone;
    try {
      const found = await api("GET", `/api/voucher-redemptions/seats?performance_id=${encodeURIComponent(id)}`);
      S.seats = found.seats;
    } catch (err) {
      S.seats = [];
      message(err.message);
    }
    const zones = zonesOf();
    if (!zones.some((z) => z.id === S.zone)) S.zone = zones.length === 1 ? zones[0].id : null;
    render();
    $("cv-seat-panel").scrollIntoView({ block: "nearest" });  // the seats come next: in view
    requote();
  }

  function zonesOf() {
    const out = new Map();
    for (const s of S.seats) {
      // the zone's name where the API gives it, else its code ("Preiskategorie 1")
      const name = s.zone_name || fill(T.cv_zone, { code: s.zone });
      const z = out.get(s.zone_id) || { id: s.zone_id, name, price: s.price_cents, n: 0 };
      z.n += 1;
      out.set(s.zone_id, z);
    }
    return [...out.values()].sort((a, b) => b.price - a.price || a.name.localeCompare(b.name));
  }

  function renderSeats() {
    $("cv-seat-panel").hidden = !S.perf;
    if (!S.perf) return;
    const zones = zonesOf();
    $("cv-zones").replaceChildren(...zones.map((z) => el("button", {
      type: "button", class: `btn toggle${z.id === S.zone ? " toggle-on" : ""}`, "data-testid": "cv-zone",
      "data-zone-id": z.id, "aria-pressed": String(z.id === S.zone),
      onclick: () => { S.zone = z.id; render(); save(); } },
    `${z.name} · ${eur(z.price)} · ${fill(T.cv_zone_free, { n: z.n })}`)));
    $("cv-seat-hint").textContent = zones.length ? T.cv_pick_zone : T.cv_no_seats;
    $("cv-seat-hint").hidden = Boolean(zones.length && S.seat);
    const shown = S.seats.filter((s) => s.zone_id === S.zone);
    $("cv-seats").replaceChildren(...shown.map((s) => el("button", {
      type: "button", class: `btn toggle cv-seat${s.seat_id === S.seat?.seat_id ? " toggle-on" : ""}`,
      "data-testid": "cv-seat", "data-seat-id": s.seat_id, "aria-pressed": String(s.seat_id === S.seat?.seat_id),
      onclick: () => chooseSeat(s) },
    el("span", { class: "cv-section", text: s.section }),
    el("span", { class: "cv-place", text: `${T.cv_row} ${s.row_label}, ${T.cv_seat_short} ${s.label}` }))));
  }

  async function chooseSeat(seat) {
    S.seat = seat;
    render();
    await requote();
  }

  /* --- 4. the rule and the split (the server's quote) ----------------------------------------- */

  function setRule(rule) {
    S.rule = rule;
    document.querySelectorAll("[data-testid=cv-rule]").forEach((b) => {
      const on = b.dataset.rule === rule;
      b.classList.toggle("toggle-on", on);
      b.setAttribute("aria-pressed", String(on));
    });
    $("cv-rule-hint").textContent = rule === "value" ? T.cv_rule_value_hint : T.cv_rule_payment_hint;
    requote();
  }

  function body() {
    return { vouchers: S.vouchers.map((x) => x.ref), performance_id: S.perf, seat_id: S.seat.seat_id, rule: S.rule };
  }

  let quoting = 0;
  async function requote() {
    const mine = ++quoting;
    S.quote = null;
    if (!S.vouchers.length || !S.perf || !S.seat) { renderSplit(); save(); return; }
    try {
      const q = await api("POST", "/api/voucher-redemptions/quote", body());
      if (mine !== quoting) return;
      S.quote = q;
      clearError();
    } catch (err) {
      if (mine !== quoting) return;
      message(err.message);
      if (err.status === 409 && err.data?.field === "seat_id") await reloadSeats();
    }
    renderSplit();
    if (S.quote?.rest_cents) $("cv-pay-panel").scrollIntoView({ block: "nearest" });  // the payment next
    save();
  }

  async function reloadSeats() {
    const gone = S.seat?.seat_id;
    await choosePerf(S.perf, S.zone);
    if (gone && !S.seats.some((s) => s.seat_id === gone)) message(T.cv_seat_gone);
  }

  function renderSplit() {
    const q = S.quote;
    $("cv-chosen").textContent = S.seat && S.perf
      ? `${when(commonOffer().find((p) => p.id === S.perf)?.starts_at || "")} · ` +
        `${commonOffer().find((p) => p.id === S.perf)?.title || ""} · ${seatText(S.seat)}`
      : T.cv_nothing;
    $("cv-chosen").className = S.seat ? "cv-chosen" : "hint";
    $("cv-split-vouchers").replaceChildren(...(q ? q.vouchers.map((v) => el("tr", {
      "data-testid": "cv-split-voucher", "data-number": v.number },
    el("td", { text: v.number }), el("td", { class: "num", text: `${eur(v.used_cents)}` +
      (v.lapsed_cents ? ` (${eur(v.lapsed_cents)} ✗)` : "") }))) : []));
    $("cv-price").textContent = q ? eur(q.total_cents) : "–";
    $("cv-used").textContent = q ? eur(q.used_cents) : "–";
    $("cv-lapsed").textContent = q ? eur(q.lapsed_cents) : "–";
    $("cv-discount").textContent = q && q.discount_label ? `${T.cv_discount}: ${q.discount_label}` : "";
    const rest = q ? q.rest_cents : null;
    $("total").textContent = rest === null ? "–" : eur(rest);
    $("total").dataset.cents = rest === null ? "" : String(rest);
    $("cv-pay-panel").hidden = !rest;
    $("redeem-button").disabled = !q || S.busy;
    $("redeem-button").textContent = rest ? fill(T.cv_redeem_pay, { amount: eur(rest) }) : T.cv_redeem;
    pay.update();
  }

  /* --- 5. paying the rest and redeeming --------------------------------------------------------- */

  function payProblem() {
    if (!S.quote) return T.cv_quote_wait;
    return S.quote.rest_cents ? pay.problem() : null;  // vouchers covering the price: nothing to pay
  }

  async function redeem() {
    const problem = payProblem();
    if (problem) { message(problem); return; }
    const sent = S.quote.rest_cents ? { ...body(), ...pay.fields() } : body();
    S.busy = true;
    $("redeem-button").disabled = true;
    try {
      const data = await api("POST", "/api/voucher-redemptions", sent);
      showResult(data, S.quote.rest_cents ? pay.method() : null);
      refreshStatus();
    } catch (err) {
      message(err.message);
      if (err.status === 409 && err.data?.field === "seat_id") await reloadSeats();
    } finally {
      S.busy = false;
      $("redeem-button").disabled = !S.quote;
    }
  }

  function showResult(data, paidBy) {
    sessionStorage.removeItem(KEY);
    sessionStorage.setItem(DONE_KEY, JSON.stringify({ data, paidBy }));
    for (const id of ["cv-vouchers-panel", "cv-perf-panel", "cv-seat-panel", "cv-pay-panel"]) $(id).hidden = true;
    $("cv-result").hidden = false;
    $("cv-number").textContent = data.order.number;
    $("cv-ticket").textContent = `${seatText(data.ticket)} · ${eur(data.ticket.price_cents)}`;
    $("cv-change-row").hidden = paidBy !== "cash";
    $("cv-change").textContent = eur(data.change_cents || 0);
    $("cv-done-vouchers").replaceChildren(...data.vouchers.map((v) => el("li", {
      "data-testid": "cv-done-voucher", "data-number": v.number,
      text: `${v.number} · ${eur(v.used_cents)}${v.lapsed_cents ? ` · ${T.cv_lapsed} ${eur(v.lapsed_cents)}` : ""}` })));
    $("cv-receipt").textContent = printText(data.receipt);
    const failed = (data.printing || []).filter((o) => o.state === "failed");
    if (failed.length) message(failed.map((o) => o.error).join(" · "));
    else message(null);
    $("cv-split-vouchers").replaceChildren(...data.vouchers.map((v) => el("tr", {},
      el("td", { text: v.number }), el("td", { class: "num", text: eur(v.used_cents) }))));
    $("cv-price").textContent = eur(data.order.total_cents);
    $("cv-used").textContent = eur(data.used_cents);
    $("cv-lapsed").textContent = eur(data.lapsed_cents);
    $("total").textContent = eur(data.paid_cents);
    $("cv-chosen").textContent = `${T.cv_ticket}: ${seatText(data.ticket)}`;
    $("cv-chosen").className = "cv-chosen";
    for (const id of ["redeem-button", "cv-cancel", "cv-rules", "cv-rule-hint", "cv-discount"]) $(id).hidden = true;
    $("cv-new").focus();
  }

  function startOver() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(DONE_KEY);
    Object.assign(S, { vouchers: [], perf: null, seats: [], zone: null, seat: null, quote: null, busy: false });
    pay.reset();
    setRule("value");
    for (const id of ["cv-vouchers-panel"]) $(id).hidden = false;
    $("cv-result").hidden = true;
    for (const id of ["redeem-button", "cv-cancel", "cv-rules", "cv-rule-hint", "cv-discount"]) $(id).hidden = false;
    message(null);
    render();
    $("cv-scan").focus();
  }

  function render() {
    renderVouchers();
    renderPerfs();
    renderSeats();
    renderSplit();
  }

  /* --- a scan anywhere on the page adds the voucher ----------------------------------------------- */

  /* A keyboard-wedge scanner types a code (digits and capitals) far faster than a person and ends it
   * with Enter. In the scan field the form takes it; elsewhere a burst that fast, then Enter, is a
   * scan and joins the list (a person typing a terminal reference never is). */
  function watchScanner() {
    watchScanBursts(addVoucher, $("cv-scan"));
  }

  /* --- wiring ------------------------------------------------------------------------------- */

  $("cv-scan-form").addEventListener("submit", (ev) => { ev.preventDefault(); addVoucher($("cv-scan").value); });
  document.querySelectorAll("[data-testid=cv-rule]").forEach((b) =>
    b.addEventListener("click", () => setRule(b.dataset.rule)));
  $("redeem-button").addEventListener("click", redeem);
  $("cv-cancel").addEventListener("click", startOver);
  $("cv-new").addEventListener("click", startOver);
  watchScanner();
  restore().then(() => { if (!$("cv-result").hidden) return; $("cv-scan").focus(); });
})();
