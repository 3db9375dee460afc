/* Tessera cash desk: selling a subscription (ring, choice, combi) from this desk's own pool, so it
 * works with the hub away. Loaded after desk.js and uses its helpers ($, el, api, message, eur,
 * formatDate, dateParts, printText, refreshStatus, T, LANG) and payment.js's PaymentBlock
 * (cash or card, the amount given, the change). The JSON API is
 * edge/desk/subscriptions_api.py; every rule (seats free in all dates, variant steps, prices,
 * tiers) is decided there, this script only walks the operator through the steps:
 *
 *   product -> (choice: N dates) -> seats on the map -> (variant steps: replacements) -> customer,
 *   tier and pass name per subscriber, form -> payment -> result
 *   (choice vouchers: product -> customer and tier -> payment -> result; no dates or seats)
 *
 * A party side by side: member k has the k-th seat tapped on every map (ring/choice: per
 * seating plan; combi: per date). The map is the server's SVG, fetched again after every tap
 * with the seats chosen marked `selected`, so what is shown is what the server will check. */
"use strict";

(function subscriptionSale() {
  const STEPS = ["product", "dates", "seats", "variants", "customer", "pay"];
  const ZOOMS = [0.6, 0.8, 1, 1.2, 1.4, 1.7, 2];  // 1.4: a seat (32 units) is 45 px, a finger's size
  const KEY = "desk-subscription";  // the sale in progress, kept across a language switch (desk.js clears it at login)
  const DONE_KEY = "desk-subscription-done";  // the result shown, until "new subscription"
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? ""));
  const when = (iso) => `${formatDate(iso)} ${dateParts(iso).time.slice(0, 5)}`;

  const S = {
    step: "product", products: [], product: null, dates: [], avail: null, tab: 0,
    seats: {},  // ring/choice: plan id -> seat ids in member order; combi: performance id -> seat ids
    labels: {},  // seat id -> {section, row, seat} (read from the maps' own labels)
    steps: [], repl: {}, stepAt: 0,  // variant steps; repl["variant|missing seat"] = replacement
    customer: null, members: [], form: null, quote: null, zoom: 4, busy: false,
  };
  // cash or card (payment.js): the whole price is due, cash with the amount given
  const pay = PaymentBlock({ due: () => (S.quote ? S.quote.total_cents : 0), onChange: () => save() });

  /* --- what the product and the choices make ------------------------------------------------ */

  const perfsOf = () => (S.product.kind === "choice"
    ? S.product.performances.filter((p) => S.dates.includes(p.id)) : S.product.performances);
  const perfById = (id) => S.product.performances.find((p) => p.id === id);
  const stepKey = (variantId, missing) => `${variantId}|${missing}`;
  /* a voucher product (S5) has no dates, seats or zones: product -> customer -> payment */
  const isVoucher = () => S.product?.kind === "voucher";
  function voucherText(p) {
    const offer = [...new Set(p.performances.map((x) => x.title))].join(", ");
    return fill(T.sub_vouchers_offer, { n: p.voucher_count, value: eur(p.voucher_value_cents), offer });
  }
  /* "6 x 25,00 € Wahlgutscheine": the tile and the subscriber's row (the offer is in the summary) */
  const voucherValue = (p) => fill(T.sub_vouchers_value, { n: p.voucher_count, value: eur(p.voucher_value_cents) });

  /** "Parkett, Reihe 3, Platz 9" in the screen's language, as the receipt and the pass write it. */
  function seatName(id) {
    const l = id && S.labels[id];
    return l ? `${l.section}, ${T.sub_row} ${l.row}, ${T.sub_seat} ${l.seat}` : "…";
  }

  /** Row and seat only, the section where it differs from *section* (the summary's narrow column). */
  function seatShort(id, section) {
    const l = id && S.labels[id];
    if (!l) return "…";
    return `${l.section === section ? "" : `${l.section}, `}${T.sub_row} ${l.row}, ${T.sub_seat} ${l.seat}`;
  }

  /* The sale in progress lives in sessionStorage: a language switch (a page load) or a look at
   * another tab keeps it; a sale, "cancel" and logging out end it. */
  const KEPT = ["dates", "tab", "seats", "labels", "steps", "repl", "stepAt", "customer", "members", "form", "zoom"];
  function snapshot() {
    const kept = { productId: S.product.id, step: S.step, ...pay.kept() };  // method, given, ref
    KEPT.forEach((k) => { kept[k] = S[k]; });
    return kept;
  }

  function save() {
    if (S.step === "result") return;
    if (!S.product) { sessionStorage.removeItem(KEY); return; }
    sessionStorage.setItem(KEY, JSON.stringify(snapshot()));
  }

  function applySnapshot(kept) {
    const product = kept && S.products.find((p) => p.id === kept.productId);
    if (!product) return false;
    KEPT.forEach((k) => { if (kept[k] !== undefined) S[k] = kept[k]; });
    S.product = product;
    return true;
  }

  async function restore() {
    let done = null;
    try { done = JSON.parse(sessionStorage.getItem(DONE_KEY) || "null"); } catch (err) { done = null; }
    if (done) {
      if (applySnapshot(done.kept)) renderSummary();  // what was sold stays beside the result
      showResult(done.data, done.paidBy);
      return true;
    }
    let kept = null;
    try { kept = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (err) { kept = null; }
    if (!kept || !STEPS.includes(kept.step) || !applySnapshot(kept)) { sessionStorage.removeItem(KEY); return false; }
    pay.restore(kept);
    if (kept.step !== "dates" && !isVoucher() && !(await loadAvailability())) { show("seats"); return true; }
    renderSummary();
    show(kept.step);
    if (kept.step === "dates") renderDates();
    if (kept.step === "seats") await renderMap();
    if (kept.step === "variants") await renderStep();
    if (kept.step === "customer") renderCustomer();
    if (kept.step === "customer" || kept.step === "pay") await requote();
    return true;
  }

  /** The maps to pick on: ring/choice a tab per plan variant of each group; combi a tab per date. */
  function tabs() {
    if (!S.avail) return [];
    if (S.product.kind === "combi") {
      return perfsOf().map((p) => ({ key: p.id, plan_id: p.plan_id, variant_id: p.variant_id,
        performance_ids: [p.id], label: when(p.starts_at), detail: p.title }));
    }
    const venues = new Set(S.product.performances.map((p) => p.venue_name));
    return S.avail.groups.flatMap((g) => g.variants.map((v) => {
      const first = perfById(v.performance_ids[0]);
      const n = v.performance_ids.length;
      return { key: g.plan_id, plan_id: g.plan_id, variant_id: v.variant_id, performance_ids: v.performance_ids,
        // the venue only where the dates are in more than one house
        label: venues.size > 1 && first ? fill(T.sub_variant_dates, { variant: first.venue_name, n })
          : fill(T.sub_dates_n, { n }),
        detail: v.performance_ids.map((id) => perfById(id)?.title).filter(Boolean).slice(0, 2).join(", ") +
          (v.performance_ids.length > 2 ? " …" : "") };
    }));
  }

  /** Subscribers: the seats tapped on the first map (every map must then have as many). */
  function partySize() {
    if (isVoucher()) return 1;
    const lists = Object.values(S.seats);
    return lists.length ? Math.max(...lists.map((l) => l.length)) : 0;
  }

  function seatsProblem() {
    if (isVoucher()) return null;
    const keys = S.product.kind === "combi" ? perfsOf().map((p) => p.id) : (S.avail?.groups || []).map((g) => g.plan_id);
    const counts = keys.map((k) => (S.seats[k] || []).length);
    if (!counts.length || counts.every((n) => n === 0)) return T.sub_seats_missing;
    if (new Set(counts).size !== 1) return S.product.kind === "combi" ? T.sub_combi_uneven : T.sub_seats_uneven;
    return null;
  }

  function memberOfSeat(seatId) {
    for (const ids of Object.values(S.seats)) {
      const k = ids.indexOf(seatId);
      if (k >= 0) return k;
    }
    return 0;
  }

  /** Member k's seat at performance p: its seat on p's plan, or the replacement where p's variant lacks it. */
  function seatAt(k, perf) {
    if (S.product.kind === "combi") return { seat: (S.seats[perf.id] || [])[k] };
    const seat = (S.seats[perf.plan_id] || [])[k];
    if (!seat) return { seat: null };
    const step = S.steps.find((st) => st.variant_id === perf.variant_id && st.missing_seat_id === seat);
    if (!step) return { seat };
    return { seat: S.repl[stepKey(step.variant_id, seat)] || null, replacement: true };
  }

  function saleBody() {
    const n = partySize();
    const members = S.members.slice(0, n).map((m, k) => {
      const out = { tier_id: m.tier_id || null, holder_name: m.holder_name.trim() || null };
      if (S.product.kind === "combi") {
        out.seats = perfsOf().map((p) => ({ performance_id: p.id, seat_id: S.seats[p.id][k] }));
      } else if (!isVoucher()) {
        out.seat_ids = S.avail.groups.map((g) => S.seats[g.plan_id][k]);
        out.replacements = S.steps.filter((st) => out.seat_ids.includes(st.missing_seat_id))
          .map((st) => ({ variant_id: st.variant_id, seat_id: S.repl[stepKey(st.variant_id, st.missing_seat_id)] }));
      }
      return out;
    });
    const body = { product_id: S.product.id, customer_id: S.customer?.id, form: S.form, members };
    if (S.product.kind === "choice") body.performance_ids = [...S.dates];
    return body;
  }

  /* --- errors in the operator's language ------------------------------------------------------ */

  /** The field a refusal names, in the operator's words (the new-customer form's fields). */
  const FIELD_WORDS = [["postcode", "sub_err_postcode"], ["email", "sub_err_email"], ["street", "sub_err_address"],
    ["town", "sub_err_address"], ["country", "sub_err_address"], ["name", "sub_err_name"]];
  function fieldText(err) {
    const field = String(err.data?.field || "");
    const hit = FIELD_WORDS.find(([end]) => field.endsWith(end));
    return hit ? T[hit[1]] : null;
  }

  function problemText(err, context = "sale") {
    const invalid = (err.status === 422 || err.status === 400) && (fieldText(err)
      || (context === "customer" ? T.sub_err_customer : T.sub_err_invalid));
    const own = invalid || { 409: T.sub_err_conflict, 403: T.sub_err_forbidden }[err.status];
    if (!own) return err.message || T.sub_err_other;
    // the server's detail names the seat or field, in English: a German screen keeps to German
    return LANG === "en" && err.data?.detail ? `${own} (${err.data.detail})` : own;
  }

  async function guarded(work) {
    try {
      return await work();
    } catch (err) {
      message(problemText(err));
      if (err.status === 409) await refreshSeats();
      return undefined;
    }
  }

  /* --- steps -------------------------------------------------------------------------------- */

  function stepsInUse() {
    if (!S.product) return ["product"];
    if (isVoucher()) return ["product", "customer", "pay"];
    return STEPS.filter((s) => (s !== "dates" || S.product.kind === "choice")
      && (s !== "variants" || S.steps.length));
  }

  function show(step) {
    S.step = step;
    document.querySelectorAll(".sub-panel[data-step]").forEach((p) => { p.hidden = p.dataset.step !== step; });
    $("sale-result").hidden = true;
    renderPills();
    $("subs").dataset.step = step;
    renderNav();
    message(null);
    save();
  }

  /** The steps this product goes through, the one shown marked, those before it done. */
  function renderPills() {
    const used = stepsInUse();
    const at = S.step === "result" ? used.length : used.indexOf(S.step);
    document.querySelectorAll("#sub-steps li").forEach((li) => {
      li.hidden = !used.includes(li.dataset.step);
      li.classList.toggle("step-now", li.dataset.step === S.step);
      li.classList.toggle("step-done", used.indexOf(li.dataset.step) < at);
    });
  }

  function renderNav() {
    if (S.step === "result") {
      ["sub-back", "sub-next", "sub-cancel"].forEach((id) => { $(id).hidden = true; });
      return;
    }
    $("sub-back").hidden = false;
    const used = stepsInUse();
    $("sub-back").disabled = S.step === "product" || S.busy;
    $("sub-next").hidden = S.step === "pay" || S.step === "product";
    $("sub-next").disabled = !!nextProblem() || S.busy;
    $("sub-cancel").hidden = !S.product;
    $("sub-next").dataset.next = used[used.indexOf(S.step) + 1] || "";
  }

  function nextProblem() {
    switch (S.step) {
      case "dates": return S.dates.length === S.product.pick_count ? null
        : fill(T.sub_dates_missing, { n: S.product.pick_count });
      case "seats": return seatsProblem();
      case "variants": return S.steps.every((st) => S.repl[stepKey(st.variant_id, st.missing_seat_id)]) ? null
        : T.sub_steps_open;
      case "customer": return S.customer ? null : T.sub_customer_missing;
      default: return null;
    }
  }

  async function next() {
    const problem = nextProblem();
    if (problem) { message(problem); return; }
    const used = stepsInUse();
    const to = used[used.indexOf(S.step) + 1];
    if (S.step === "dates") await loadAvailability();
    if (to === "seats") { S.tab = 0; show("seats"); await renderMap(); return; }
    if (to === "variants") { S.stepAt = 0; show("variants"); await renderStep(); return; }
    if (to === "customer") { resizeMembers(); show("customer"); renderCustomer(); await requote(); return; }
    if (to === "pay") { show("pay"); pay.update(); return; }
    show(to);
  }

  async function back() {
    if (S.step === "variants" && S.stepAt > 0) { S.stepAt -= 1; await renderStep(); return; }
    const used = stepsInUse();
    const to = used[used.indexOf(S.step) - 1];
    if (!to) return;
    show(to);
    if (to === "seats") await renderMap();
    if (to === "variants") { S.stepAt = S.steps.length - 1; await renderStep(); }
    if (to === "product") await loadProducts();
  }

  /* --- 1. products ------------------------------------------------------------------------- */

  async function loadProducts() {
    const data = await guarded(() => api("GET", "/api/subscription-products"));
    if (!data) return;
    S.products = data.products;
    const box = $("sub-products");
    box.replaceChildren();
    if (!S.products.length) box.append(el("p", { class: "hint", text: T.sub_no_products }));
    S.products.forEach((p) => box.append(productTile(p)));
  }

  function productTile(p) {
    const dates = p.performances.map((x) => x.starts_at).sort();
    const prices = p.kind === "voucher" ? [p.price_cents] : (p.zones || []).map((z) => z.price_cents);
    return el("button", { type: "button", class: "tile sub-tile", "data-testid": "sub-product-tile",
      // a choice may still sell with no seat free in ALL its dates: only in the N chosen must it be
      "data-product-id": p.id, "data-kind": p.kind, disabled: p.free_in_pool > 0 || p.kind === "choice" || p.kind === "voucher" ? null : true,
      onclick: () => chooseProduct(p) },
    el("span", { class: "tile-tag", text: T[`sub_kind_${p.kind}`] || p.kind }),
    el("span", { class: "tile-name", text: p.name }),
    el("span", { class: "tile-sub", text: p.title || "" }),
    el("span", { class: "tile-dates", text: `${fill(T.sub_dates_n, { n: p.performances.length })}` +
      (dates.length ? ` · ${formatDate(dates[0])} – ${formatDate(dates[dates.length - 1])}` : "") }),
    p.kind === "voucher" ? el("span", { class: "tile-free", "data-testid": "sub-vouchers", text: voucherValue(p) })
      : el("span", { class: p.free_in_pool > 0 ? "tile-free" : "tile-free tile-none", "data-testid": "sub-free",
      text: p.kind === "choice" ? fill(T.sub_free_choice, { n: p.free_in_pool })
        : p.free_in_pool > 0 ? fill(T.sub_free_n, { n: p.free_in_pool }) : T.sub_free_none }),
    prices.length ? el("span", { class: "tile-price", text: fill(T.sub_from, { price: eur(Math.min(...prices)) }) }) : "");
  }

  async function chooseProduct(p) {
    resetChoices();
    S.product = p;
    S.form = p.default_form || p.forms[0];
    renderSummary();
    if (p.kind === "choice") { show("dates"); renderDates(); return; }
    if (p.kind === "voucher") { resizeMembers(); show("customer"); renderCustomer(); await requote(); return; }
    if (await loadAvailability()) { S.tab = 0; show("seats"); await renderMap(); }
  }

  function resetChoices() {
    Object.assign(S, { product: null, dates: [], avail: null, tab: 0, seats: {}, steps: [], repl: {}, stepAt: 0,
      members: [], quote: null, form: null });
  }

  /* --- 2. a choice's dates ------------------------------------------------------------------ */

  function renderDates() {
    const n = S.product.pick_count;
    $("dates-ask").textContent = fill(T.sub_pick_dates, { n, m: S.product.performances.length });
    $("dates-count").textContent = fill(T.sub_picked_dates, { k: S.dates.length, n });
    const box = $("date-list");
    box.replaceChildren(...S.product.performances.map((p) => {
      const on = S.dates.includes(p.id);
      return el("button", { type: "button", class: `btn toggle date-toggle${on ? " toggle-on" : ""}`,
        "data-testid": "date-toggle", "data-performance-id": p.id, "aria-pressed": String(on),
        disabled: !on && S.dates.length >= n ? true : null, onclick: () => toggleDate(p.id) },
      el("span", { class: "date-when", text: when(p.starts_at) }), el("span", { class: "date-title", text: p.title }));
    }));
    renderNav();
  }

  function toggleDate(id) {
    S.dates = S.dates.includes(id) ? S.dates.filter((d) => d !== id) : [...S.dates, id];
    S.seats = {}; S.steps = []; S.repl = {}; S.avail = null;  // other dates, other seats free in all
    renderDates();
    renderSummary();
  }

  async function loadAvailability() {
    const q = S.product.kind === "choice" ? `?performance_ids=${S.dates.join(",")}` : "";
    const data = await guarded(() => api("GET", `/api/subscription-products/${S.product.id}/availability${q}`));
    if (data) S.avail = data;
    return !!data;
  }

  /* --- 3. the seat map ------------------------------------------------------------------------ */

  async function fetchMap(tab, selected) {
    const q = new URLSearchParams({ plan_id: tab.plan_id, variant_id: tab.variant_id,
      performance_ids: tab.performance_ids.join(","), selected: selected.join(","), lang: LANG });
    const resp = await fetch(`/api/subscription-products/${S.product.id}/seat-map.svg?${q}`,
      { credentials: "same-origin", headers: { Accept: "image/svg+xml, application/problem+json" } });
    if (!resp.ok) {
      const data = await resp.json().catch(() => ({}));
      if (resp.status === 401) location.href = "/";
      throw Object.assign(new Error(data.detail || `${resp.status}`), { status: resp.status, data });
    }
    return resp.text();
  }

  /** Put the SVG in, sized by the zoom, learn its seats' names; keep the scroll unless `centre`. */
  function placeMap(box, svgText, centre) {
    const keep = [box.scrollLeft, box.scrollTop];
    box.innerHTML = svgText;  // the server's renderer: no script inside, every text escaped
    const svg = box.querySelector("svg");
    if (!svg) return;
    const width = Number(svg.getAttribute("width")) || 800;
    svg.style.width = `${Math.round(width * ZOOMS[S.zoom])}px`;
    svg.style.height = "auto";
    svg.querySelectorAll("[data-seat-id]").forEach((g) => {
      // "Reihe 3, Platz 9, Parkett, frei": the words before row and seat are the map's language
      const [row, seat, section] = (g.getAttribute("aria-label") || "").split(", ");
      const value = (part) => (part || "").replace(/^\S+\s+/, "");
      S.labels[g.dataset.seatId] = { section: section || "", row: value(row), seat: value(seat) };
    });
    if (!centre) { [box.scrollLeft, box.scrollTop] = keep; return; }
    const target = svg.querySelector('[data-state="selected"]') || svg.querySelector('[data-state="free"]');
    if (!target) return;
    const b = box.getBoundingClientRect(), t = target.getBoundingClientRect();
    box.scrollLeft += t.left - b.left - box.clientWidth / 2 + t.width / 2;
    box.scrollTop += t.top - b.top - box.clientHeight / 2 + t.height / 2;
  }

  let mapNo = 0;
  async function renderMap(centre = true) {
    const all = tabs();
    const tab = all[S.tab] || all[0];
    $("seats-hint").textContent = S.product.kind === "combi" ? T.sub_pick_combi : T.sub_pick_seats;
    $("map-tabs").replaceChildren(...all.map((t, i) => el("button", {
      type: "button", role: "tab", class: `btn map-tab${i === S.tab ? " toggle-on" : ""}`, "data-testid": "map-tab",
      "data-plan-id": t.plan_id, "data-variant-id": t.variant_id, "data-key": t.key, "aria-selected": String(i === S.tab),
      onclick: () => { S.tab = i; renderMap(); } },
    el("span", { class: "map-tab-label", text: t.label }),
    t.detail ? el("span", { class: "map-tab-detail", text: t.detail }) : "",
    el("span", { class: "map-tab-count", "data-testid": "map-tab-count", text: `${(S.seats[t.key] || []).length}` }))));
    if (!tab) return;
    const mine = ++mapNo;
    const svg = await guarded(() => fetchMap(tab, S.seats[tab.key] || []));
    if (svg !== undefined && mine === mapNo) {  // only the newest answer: an older one may show older seats
      placeMap($("seat-map"), svg, centre);
      Object.assign($("seat-map").dataset, { key: tab.key, variant: tab.variant_id });
    }
    renderNav();
  }

  async function tapSeat(seatId) {
    const tab = tabs()[S.tab];
    const ids = S.seats[tab.key] || [];
    S.seats[tab.key] = ids.includes(seatId) ? ids.filter((s) => s !== seatId) : [...ids, seatId];
    S.quote = null;  // other seats, another price
    showTotal();
    await refreshSteps();
    renderSummary();
    await renderMap(false);
  }

  /** The variant steps for the seats now chosen; a replacement chosen before stays while it is still free. */
  async function refreshSteps() {
    if (S.product.kind === "combi") { S.steps = []; return; }
    const seatIds = Object.values(S.seats).flat();
    if (!seatIds.length) { S.steps = []; S.repl = {}; return; }
    const q = new URLSearchParams({ seat_ids: seatIds.join(",") });
    if (S.product.kind === "choice") q.set("performance_ids", S.dates.join(","));
    const data = await guarded(() => api("GET", `/api/subscription-products/${S.product.id}/variant-steps?${q}`));
    if (!data) return;
    S.steps = data.steps;
    const kept = {};
    for (const st of S.steps) {
      const key = stepKey(st.variant_id, st.missing_seat_id);
      const taken = Object.entries(kept).filter(([k]) => k.startsWith(`${st.variant_id}|`)).map(([, v]) => v);
      const old = S.repl[key];
      if (old && st.free_seat_ids.includes(old) && !taken.includes(old)) kept[key] = old;
      else if (st.suggestion && !taken.includes(st.suggestion)) kept[key] = st.suggestion;
    }
    S.repl = kept;
  }

  /** Drop the chosen seats that are no longer free (sold by another till session, recalled to the
   * hub): the map then shows them taken and the operator taps others. */
  function pruneTaken() {
    const free = {};
    if (S.product.kind === "combi") {
      S.avail.performances.forEach((p) => { free[p.performance_id] = new Set(p.free_seat_ids); });
    } else {
      S.avail.groups.forEach((g) => { free[g.plan_id] = new Set(g.variants.flatMap((v) => v.free_seat_ids)); });
    }
    for (const [key, ids] of Object.entries(S.seats)) S.seats[key] = ids.filter((id) => free[key]?.has(id));
    S.quote = null;  // other seats, another price
    showTotal();
  }

  async function refreshSeats() {
    /* after a refusal (a seat taken meanwhile, recalled to the hub): fresh availability and maps */
    if (!S.product) return;
    if (S.step === "product") { await loadProducts(); return; }
    if (!(await loadAvailability().catch(() => false))) return;
    pruneTaken();
    await refreshSteps();
    renderSummary();
    if (S.step === "seats") await renderMap(false);
    if (S.step === "variants") await renderStep();
  }

  /* --- 4. variant steps: a replacement where a plan variant lacks the seat ------------------ */

  let stepMapNo = 0;
  async function renderStep() {
    const st = S.steps[S.stepAt];
    if (!st) return;
    const key = stepKey(st.variant_id, st.missing_seat_id);
    const titles = st.performance_ids.map((id) => perfById(id)?.title).filter(Boolean);
    $("variant-step-of").textContent = fill(T.sub_step_of, { k: S.stepAt + 1, n: S.steps.length });
    $("variant-step-text").textContent = fill(T.sub_step_missing, {
      who: fill(T.sub_member, { k: memberOfSeat(st.missing_seat_id) + 1 }),
      seat: seatName(st.missing_seat_id), n: st.performance_ids.length,
      dates: titles.slice(0, 4).join(", ") + (titles.length > 4 ? " …" : "") });
    const suggest = () => {  // the suggestion and, where it differs, the seat this member has here now
      const now = S.repl[key];
      $("variant-suggestion").textContent = (st.suggestion ? `${T.sub_suggestion}: ${seatName(st.suggestion)}`
        : T.sub_no_suggestion) + (now && now !== st.suggestion ? ` · ${T.sub_chosen}: ${seatName(now)}` : "");
    };
    suggest();
    $("take-suggestion").disabled = !st.suggestion || S.repl[key] === st.suggestion
      || usedElsewhere(st, st.suggestion);
    const chosen = S.steps.filter((o) => o.variant_id === st.variant_id)
      .map((o) => S.repl[stepKey(o.variant_id, o.missing_seat_id)]).filter(Boolean);
    const tab = { plan_id: st.plan_id, variant_id: st.variant_id, performance_ids: st.performance_ids };
    const mine = ++stepMapNo;
    const svg = await guarded(() => fetchMap(tab, chosen));
    if (svg !== undefined && mine === stepMapNo) {
      placeMap($("step-map"), svg, true);
      suggest();  // the suggestion's name is known once its map is in
    }
    renderSummary();
    renderNav();
  }

  function usedElsewhere(st, seatId) {
    return S.steps.some((o) => o !== st && o.variant_id === st.variant_id
      && S.repl[stepKey(o.variant_id, o.missing_seat_id)] === seatId);
  }

  async function tapReplacement(seatId) {
    const st = S.steps[S.stepAt];
    if (!st.free_seat_ids.includes(seatId) || usedElsewhere(st, seatId)) return;
    S.repl[stepKey(st.variant_id, st.missing_seat_id)] = seatId;
    await renderStep();
  }

  /* --- 5. customer, tiers, pass names, form, price ------------------------------------------ */

  function resizeMembers() {
    const n = partySize();
    while (S.members.length < n) S.members.push({ tier_id: "", holder_name: "" });
    S.members.length = n;
    if (n && S.customer && !S.members[0].holder_name) S.members[0].holder_name = customerName(S.customer);
  }

  const customerName = (c) => `${c.first_name} ${c.last_name}`.trim();
  const customerText = (c) => `${c.last_name}, ${c.first_name} · ${c.number}` + (c.town ? ` · ${c.town}` : "");

  function renderCustomer() {
    $("sub-customer-find").hidden = !!S.customer || !$("new-customer-form").hidden;
    $("customer-chosen-row").hidden = !S.customer;
    $("customer-chosen").textContent = S.customer ? customerText(S.customer) : "";
    $("sub-forms").replaceChildren(...S.product.forms.map((f) => el("button", {
      type: "button", class: `btn toggle${f === S.form ? " toggle-on" : ""}`, "data-testid": "form-choice",
      "data-form": f, "aria-pressed": String(f === S.form), text: T[`sub_form_${f}`] || f,
      onclick: () => { S.form = f; renderCustomer(); requote(); } })));
    $("sub-form-row").hidden = S.product.forms.length < 2;
    $("sub-members").replaceChildren(...S.members.map((m, k) => memberRow(m, k)));
    renderNav();
    save();
  }

  function memberRow(m, k) {
    const tiers = [{ id: "", name: T.sub_full_price }, ...S.product.tiers];
    const price = S.quote?.members?.[k]?.price_cents;
    return el("div", { class: "member-row", "data-testid": "member-row", "data-member": String(k) },
      el("div", { class: "member-head" },
        el("b", { text: fill(T.sub_member, { k: k + 1 }) }),
        el("span", { class: "member-seat", text: memberSeatText(k) }),
        el("span", { class: "member-price", "data-testid": "member-price", text: price === undefined ? "" : eur(price) })),
      el("input", { class: "field", type: "text", maxlength: "200", value: m.holder_name, "data-testid": "member-holder",
        placeholder: T.sub_holder, "aria-label": `${T.sub_holder} ${k + 1}`,
        oninput: (ev) => { m.holder_name = ev.target.value; save(); } }),
      el("div", { class: "toggles tiers", role: "radiogroup", "aria-label": T.sub_tier }, ...tiers.map((t) => el("button", {
        type: "button", class: `btn toggle${(m.tier_id || "") === t.id ? " toggle-on" : ""}`, "data-testid": "tier-choice",
        "data-tier-id": t.id, "aria-pressed": String((m.tier_id || "") === t.id), text: t.name,
        onclick: () => { m.tier_id = t.id; renderCustomer(); requote(); } }))));
  }

  function memberSeatText(k) {
    if (isVoucher()) return voucherValue(S.product);
    const perfs = perfsOf();
    const seats = [...new Set(perfs.map((p) => seatAt(k, p)).filter((s) => !s.replacement).map((s) => s.seat))];
    return seats.map(seatName).join(" / ");
  }

  function chooseCustomer(c) {
    S.customer = c;
    $("customer-results").replaceChildren();
    $("customer-search").value = "";
    $("new-customer-form").hidden = true;
    if (c && S.members.length && !S.members[0].holder_name) S.members[0].holder_name = customerName(c);
    renderCustomer();
    requote();
  }

  let searchTimer = null;
  async function searchCustomers() {
    const q = $("customer-search").value.trim();
    const box = $("customer-results");
    if (q.length < 2) { box.replaceChildren(); return; }
    const found = await guarded(() => api("GET", `/api/customers?q=${encodeURIComponent(q)}`));
    if (!found || q !== $("customer-search").value.trim()) return;
    box.replaceChildren(...(found.length ? found.map((c) => el("button", {
      type: "button", class: "btn customer-result", "data-testid": "customer-result", "data-customer-id": c.id,
      text: customerText(c), onclick: () => chooseCustomer(c) })) : [el("p", { class: "hint", text: T.customer_none })]));
  }

  async function saveCustomer(ev) {
    ev.preventDefault();
    const v = (id) => $(id).value.trim();
    if (!v("nc-first") || !v("nc-last") || !v("nc-street") || !v("nc-postcode") || !v("nc-town")) {
      message(T.sub_customer_fields);
      return;
    }
    const body = { first_name: v("nc-first"), last_name: v("nc-last"), address: {
      street: v("nc-street"), postcode: v("nc-postcode"), town: v("nc-town"), country: (v("nc-country") || "DE").toUpperCase() } };
    if (v("nc-email")) body.email = v("nc-email");
    document.querySelectorAll("#new-customer-form .field-bad").forEach((f) => f.classList.remove("field-bad"));
    let made;
    try {
      made = await api("POST", "/api/customers", body);
    } catch (err) {
      message(problemText(err, "customer"));
      const field = String(err.data?.field || "");
      const input = ["first", "last", "street", "postcode", "town", "country", "email"]
        .find((name) => field.endsWith(name.replace("first", "first_name").replace("last", "last_name")));
      if (input) { $(`nc-${input}`).classList.add("field-bad"); $(`nc-${input}`).focus(); }
      return;
    }
    message(null);
    chooseCustomer({ ...made, town: made.town || made.address?.town });
    ["nc-first", "nc-last", "nc-street", "nc-postcode", "nc-town", "nc-email"].forEach((id) => { $(id).value = ""; });
  }

  let quoteNo = 0;
  async function requote() {
    S.quote = null;
    showTotal();
    if (!S.customer || !S.product || seatsProblem()) return;
    const mine = ++quoteNo;
    try {
      const q = await api("POST", "/api/subscription-quote", saleBody());
      if (mine !== quoteNo) return;  // a newer question is on its way
      S.quote = q;
      message(null);
    } catch (err) {
      if (mine !== quoteNo) return;
      message(problemText(err));
    }
    showTotal();
    if (S.step === "customer") {
      document.querySelectorAll("[data-testid=member-price]").forEach((span, k) => {
        const price = S.quote?.members?.[k]?.price_cents;
        span.textContent = price === undefined ? "" : eur(price);
      });
    }
    renderNav();
  }

  function showTotal() {
    const total = S.quote ? S.quote.total_cents : null;
    $("total").textContent = total === null ? "–" : eur(total);
    $("total").dataset.cents = total === null ? "" : String(total);
    pay.update();
  }

  /* --- 6. payment and the sale -------------------------------------------------------------- */

  async function sell() {
    const problem = S.quote ? pay.problem() : T.sub_quote_wait;
    if (problem) { message(problem); return; }
    const body = { ...saleBody(), ...pay.fields() };
    S.busy = true;
    $("sell-button").disabled = true;
    renderNav();
    try {
      const data = await api("POST", "/api/subscriptions", body);
      showResult(data, pay.method());
      refreshStatus();
    } catch (err) {
      message(problemText(err));
      if (err.status === 409) {  // back to the map, the seat gone shown taken; the banner stays
        show("seats");
        message(problemText(err));
        await refreshSeats();
        await renderMap();
      }
    } finally {
      S.busy = false;
      $("sell-button").disabled = false;
      renderNav();
    }
  }

  /** "16 gedruckt", "2 in Warteschlange, 1 fehlgeschlagen: ...": print outcomes counted by what happened. */
  function outcomesText(outcomes) {
    const counts = new Map();
    outcomes.forEach((o) => { const t = printText(o); counts.set(t, (counts.get(t) || 0) + 1); });
    return [...counts].map(([t, n]) => `${n} ${t}`).join(", ");
  }

  function showResult(data, paidBy) {
    const kept = S.product ? snapshot() : null;
    S.step = "result";
    sessionStorage.removeItem(KEY);  // sold: the sale in progress is done, its result stays until "new"
    sessionStorage.setItem(DONE_KEY, JSON.stringify({ data, paidBy, kept }));
    document.querySelectorAll(".sub-panel[data-step]").forEach((p) => { p.hidden = true; });
    $("sale-result").hidden = false;
    renderNav();
    $("sale-number").textContent = data.order.number;
    $("sale-change").textContent = eur(data.change_cents || 0);
    $("sale-change-row").hidden = paidBy !== "cash";
    /* printing: the receipt, then the ticket slips on the receipt printer, then the passes (card printer) */
    const slips = data.subscriptions.filter((s) => s.form !== "pass").reduce((n, s) => n + s.tickets.length, 0);
    const printing = data.printing || [];
    const slipOutcomes = printing.slice(1, 1 + slips), passes = printing.slice(1 + slips);
    const vouchers = data.subscriptions.reduce((n, s) => n + (s.vouchers || []).length, 0);
    $("sale-receipt").textContent = printText(data.receipt) +
      (vouchers ? ` · ${fill(T.sub_with_voucher_slips, { n: vouchers })}` : "") + (slips ? ` · ${fill(T.sub_with_slips, { n: slips })}` +
      (slipOutcomes.every((o) => o.state === "printed") ? "" : ` (${outcomesText(slipOutcomes)})`) : "");
    $("sale-passes-row").hidden = !passes.length;
    $("sale-passes").textContent = outcomesText(passes);
    $("sale-subscriptions").replaceChildren(...data.subscriptions.map(soldLine));
    const failed = printing.filter((o) => o.state === "failed");
    if (failed.length) message(failed.map((o) => o.error).join(" · "));
    else message(null);
    renderPills();
    $("total").textContent = eur(data.order.total_cents);
    $("total").dataset.cents = String(data.order.total_cents);
    $("new-sale").focus();
  }

  /** A subscription sold: number, holder, form and tickets, price; a voucher one (no form to
   * choose) its voucher numbers below, one each, as the slips print them. */
  function soldLine(s) {
    const vouchers = s.vouchers || [];
    const what = vouchers.length ? fill(T.sub_vouchers_n, { n: vouchers.length })
      : `${T[`sub_form_${s.form}`] || s.form} · ${fill(T.sub_tickets_n, { n: s.tickets.length })}`;
    return el("li", { "data-testid": "sale-subscription", "data-number": s.number, "data-form": s.form },
      `${s.number} · ${s.holder_name || ""} · ${what} · ${eur(s.price_cents)}`,
      vouchers.length ? el("ul", { class: "voucher-numbers" }, ...vouchers.map((v) => el("li", {
        "data-testid": "sale-voucher", "data-number": v.number, text: v.number }))) : "");
  }

  function startOver() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(DONE_KEY);
    resetChoices();
    S.customer = null;
    pay.reset();
    $("sub-back").hidden = false;
    renderSummary();
    showTotal();
    show("product");
    loadProducts();
  }

  /* --- the summary: every subscriber's seat at every date ----------------------------------- */

  function renderSummary() {
    const box = $("sub-chosen");
    if (!S.product) { box.replaceChildren(el("p", { class: "hint", text: T.sub_nothing })); return; }
    const head = el("p", { class: "chosen-product", "data-testid": "chosen-product" },
      el("b", { text: S.product.name }), ` · ${T[`sub_kind_${S.product.kind}`] || ""}`);
    const n = partySize();
    const parts = [head];
    if (isVoucher()) {
      box.replaceChildren(head, el("p", { "data-testid": "voucher-offer", text: voucherText(S.product) }),
        el("p", { class: "hint", text: T.sub_vouchers_hint }));
      save();
      return;
    }
    if (n > 1) parts.push(el("p", { class: "hint", text: fill(T.sub_party, { n }) }));
    for (let k = 0; k < n; k++) {
      const lines = perfsOf().map((p) => {
        const at = seatAt(k, p);
        const main = S.labels[(S.seats[p.plan_id] || S.seats[p.id] || [])[k]];
        return el("li", { "data-testid": "booked-date", "data-performance-id": p.id, "data-seat-id": at.seat || "",
          "data-replacement": at.replacement ? "true" : "false", class: at.replacement ? "is-replacement" : null },
        el("span", { class: "bd-when", title: `${when(p.starts_at)} ${p.title}`, text: `${formatDate(p.starts_at)} ${p.title}` }),
        el("span", { class: "bd-seat" }, at.seat ? seatShort(at.seat, main?.section) : "?",
          at.replacement ? el("span", { class: "bd-badge", text: T.sub_replacement }) : ""));
      });
      parts.push(el("div", { class: "member-summary", "data-testid": "member-summary", "data-member": String(k) },
        el("b", { text: `${fill(T.sub_member, { k: k + 1 })}: ${memberSeatText(k)}` }),
        el("div", { class: "hint", text: T.sub_across }),
        el("ul", { class: "booked", "data-testid": "booked-across" }, ...lines)));
    }
    box.replaceChildren(...parts);
    save();
  }

  /* --- a scanned card code opens the card lookup, wherever the focus is --------------------- */

  /* A keyboard-wedge scanner types a card code (160 symbols of digits and capitals) far faster
   * than a person and ends it with Enter. A burst of code symbols that fast on average (a busy
   * machine may stall a key or two, so not each gap), then Enter, is a scan; a person typing a
   * name (small letters, spaces, 100 ms a key) never is. */
  function watchScanner() {
    watchScanBursts((code) => {
      message(T.sub_scan_opens, "ok");
      location.href = `/cards?q=${encodeURIComponent(code)}`;
    });
  }

  /* --- wiring ------------------------------------------------------------------------------- */

  function seatOf(ev) {
    const g = ev.target?.closest?.("[data-seat-id]");
    return g && (g.dataset.state === "free" || g.dataset.state === "selected") ? g.dataset.seatId : null;
  }

  function onSeat(box, handler) {
    box.addEventListener("click", (ev) => {
      const id = seatOf(ev);
      if (id && !S.busy) handler(id);
    });
    box.addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" && ev.key !== " ") return;
      const id = seatOf(ev);
      if (!id) return;
      ev.preventDefault();
      handler(id);
    });
  }

  function zoomBy(delta, again) {
    S.zoom = Math.max(0, Math.min(ZOOMS.length - 1, S.zoom + delta));
    again();
  }

  onSeat($("seat-map"), tapSeat);
  onSeat($("step-map"), tapReplacement);
  $("zoom-in").addEventListener("click", () => zoomBy(1, () => renderMap()));
  $("zoom-out").addEventListener("click", () => zoomBy(-1, () => renderMap()));
  $("step-zoom-in").addEventListener("click", () => zoomBy(1, renderStep));
  $("step-zoom-out").addEventListener("click", () => zoomBy(-1, renderStep));
  $("take-suggestion").addEventListener("click", () => tapReplacement(S.steps[S.stepAt].suggestion));
  $("sub-next").addEventListener("click", async () => {
    if (S.step === "variants" && S.stepAt < S.steps.length - 1) {
      if (!S.repl[stepKey(S.steps[S.stepAt].variant_id, S.steps[S.stepAt].missing_seat_id)]) {
        message(T.sub_steps_open); return;
      }
      S.stepAt += 1;
      await renderStep();
      return;
    }
    await next();
  });
  $("sub-back").addEventListener("click", back);
  $("sub-cancel").addEventListener("click", startOver);
  $("new-sale").addEventListener("click", startOver);
  $("customer-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchCustomers, 250);
  });
  $("customer-search").addEventListener("keydown", (ev) => { if (ev.key === "Enter") ev.preventDefault(); });
  $("customer-clear").addEventListener("click", () => chooseCustomer(null));
  $("new-customer").addEventListener("click", () => {
    $("new-customer-form").hidden = false;
    $("sub-customer-find").hidden = true;
    $("nc-first").focus();
  });
  $("nc-cancel").addEventListener("click", () => { $("new-customer-form").hidden = true; renderCustomer(); });
  $("new-customer-form").addEventListener("submit", saveCustomer);
  $("sell-button").addEventListener("click", sell);
  watchScanner();
  renderNav();
  loadProducts().then(restore).then((restored) => { if (!restored) show("product"); });
})();
