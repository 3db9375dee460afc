/* Tessera cash desk: the behaviour of the payment block (templates/payment.html), written once for
 * the three screens that include it: the annual sale (desk.js), the subscription sale
 * (subscriptions.js) and the choice-voucher redemption (vouchers.js). Cash or card, the amount given,
 * the quick-cash buttons, the change and the "not enough" warning, the payment problem and the
 * body's payment fields.
 *
 * Loaded by payment.html, so before desk.js; it only defines window.PaymentBlock, which a screen
 * calls once desk.js has run (it uses desk.js's $, eur, parseCents and T at call time). The server
 * decides again; this only spares the cashier a refusal.
 *
 *   const pay = PaymentBlock({ due: () => cents, onChange: save, cashNeedsGiven: true });
 *   pay.method(), pay.setMethod("card"), pay.give(cents), pay.update(), pay.problem(), pay.fields(),
 *   pay.kept() -> {method, given, ref} for the screen's sessionStorage, pay.restore(kept), pay.reset()
 */
"use strict";

window.PaymentBlock = function PaymentBlock(opts) {
  const texts = opts.texts || T;
  const onChange = opts.onChange || (() => {});
  // the annual sale takes cash without an amount typed; subscriptions and vouchers want it
  const cashNeedsGiven = opts.cashNeedsGiven !== false;
  let method = "cash";

  const given = () => parseCents($("given").value);

  /** Change on one line, "–" while nothing or not enough is given; "not enough" on its own line. */
  function update() {
    const due = opts.due(), cents = given();
    const short = cents !== null && cents < due;
    $("change").textContent = cents === null || short ? "–" : eur(cents - due);
    $("change-warning").hidden = !short;
  }

  function setMethod(m) {
    method = m === "card" ? "card" : "cash";
    for (const b of [$("pay-cash"), $("pay-card")]) {
      const on = b.dataset.method === method;
      b.classList.toggle("toggle-on", on);
      b.setAttribute("aria-pressed", String(on));
    }
    $("cash-fields").hidden = method !== "cash";
    $("card-fields").hidden = method !== "card";
  }

  function give(cents) {
    $("given").value = eur(cents).replace(" €", "");
    update();
    onChange();
  }

  /** Why this payment would be refused (a card needs the terminal's reference; cash enough), or null. */
  function problem() {
    if (method === "card") return $("terminal-ref").value.trim() ? null : texts.ref_missing;
    const cents = given();
    if (cents === null) return cashNeedsGiven ? texts.given_too_low : null;
    return cents < opts.due() ? texts.given_too_low : null;
  }

  /** The request body's payment part: payment_method and given_cents or payment_reference. */
  function fields() {
    if (method === "card") return { payment_method: "card", payment_reference: $("terminal-ref").value.trim() };
    const cents = given();
    return cents === null ? { payment_method: "cash" } : { payment_method: "cash", given_cents: cents };
  }

  const kept = () => ({ method, given: $("given").value, ref: $("terminal-ref").value });

  function restore(k) {
    $("given").value = (k && k.given) || "";
    $("terminal-ref").value = (k && k.ref) || "";
    setMethod(k && k.method);
    update();
  }

  const reset = () => restore(null);

  $("pay-cash").addEventListener("click", () => { setMethod("cash"); onChange(); });
  $("pay-card").addEventListener("click", () => { setMethod("card"); onChange(); $("terminal-ref").focus(); });
  $("given").addEventListener("input", () => { update(); onChange(); });
  $("terminal-ref").addEventListener("input", onChange);
  $("given-exact").addEventListener("click", () => give(opts.due()));
  document.querySelectorAll("[data-testid=quick-cash]").forEach((b) =>
    b.addEventListener("click", () => give(Number(b.dataset.cents))));

  return { method: () => method, setMethod, give, update, problem, fields, kept, restore, reset };
};
