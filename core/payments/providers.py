"""Payment methods as providers behind one small interface (S11), a registry as pretix keeps one.

A payment row (core/sales/payments.py) names its method with a word; the provider of that word
says what taking the payment needs and what follows from it:

- cash: what the customer handed over (`given_cents`, at least the amount) and the change;
- card: the external terminal's receipt number (the day's card takings are matched with it);
- transfer: owed against an invoice, paid when the money is on the bank account (14 days);
- sepa: a direct debit from a mandate, owed until the debit is collected (14 days: the
  pre-notification lead time);
- online: the shop's payment service reference (its transaction id);
- voucher: a choice voucher that paid (part of) a ticket; its code is the reference.

Two facts stay where the order ledger (rank 4, below this room) already keeps them, so there
is one rule in one place: which methods a cash desk takes (`DESK_PAYMENTS`) and whether a
method is paid when the order is placed or stays pending (`state_at_order`). The desk's own
check (`check_payment`) keeps its place there too: core/sales cannot import this room.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.base.errors import ValidationError
from core.base.money import MAX_CENTS
from core.sales import payments as ledger


@dataclass(frozen=True, slots=True)
class Taken:
    """A payment a provider accepted: the row's state, its reference and the cash change."""

    method: str
    amount_cents: int
    state: str
    reference: str | None
    given_cents: int | None
    change_cents: int


@dataclass(frozen=True, slots=True)
class Provider:
    """One payment method. `reference` is what the reference means for it (None: it has none);
    `reference_required` whether a payment without one is refused; `term_days` how long what
    stays open may stay open (0: due at once)."""

    method: str
    label: str
    label_de: str
    reference: str | None = None
    reference_de: str | None = None
    reference_required: bool = False
    takes_given: bool = False
    term_days: int = 0

    @property
    def settles_at_once(self) -> bool:
        """Paid when the order is placed (cash, card, ...), or pending until the money arrives."""
        return ledger.state_at_order(self.method) == "paid"

    @property
    def at_desk(self) -> bool:
        """A cash desk takes it (core/sales/payments.py DESK_PAYMENTS)."""
        return self.method in ledger.DESK_PAYMENTS

    def take(self, amount_cents: int, *, reference: str | None = None,
             given_cents: int | None = None) -> Taken:
        """Check a payment of *amount_cents* by this method; a refund is a negative amount."""
        if not -MAX_CENTS <= amount_cents <= MAX_CENTS:
            raise ValidationError(f"an amount is at most {MAX_CENTS} cents", field="amount_cents",
                                  detail_de=f"Ein Betrag ist höchstens {MAX_CENTS} Cent")
        reference = (reference or "").strip() or None
        if reference is None and self.reference_required and amount_cents > 0:
            raise ValidationError(f"enter the {self.reference}", field="reference",
                                  detail_de=f"Bitte {self.reference_de} eingeben")
        if reference is not None and self.reference is None:
            raise ValidationError(f"a {self.label.lower()} payment has no reference", field="reference",
                                  detail_de=f"Eine Zahlung per {self.label_de} hat keine Referenz")
        change = 0
        if given_cents is not None:
            if not self.takes_given:
                raise ValidationError("only cash is handed over", field="given_cents",
                                      detail_de="Nur Bargeld wird übergeben")
            if given_cents < amount_cents or given_cents > MAX_CENTS:
                raise ValidationError("the cash given is less than the amount", field="given_cents",
                                      detail_de="Das gegebene Bargeld ist weniger als der Betrag")
            change = given_cents - amount_cents
        state = "paid" if self.settles_at_once else "pending"
        return Taken(self.method, amount_cents, state, reference, given_cents, change)


_REGISTRY: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    """Add a provider; a method is registered once (a second one is a programming error)."""
    if provider.method in _REGISTRY:
        raise RuntimeError(f"payment method {provider.method!r} is registered twice")
    _REGISTRY[provider.method] = provider
    return provider


def get(method: str) -> Provider:
    """The provider of *method*; an unknown word is the client's error (422 on payment_method)."""
    provider = _REGISTRY.get(method)
    if provider is None:
        known = ", ".join(_REGISTRY)
        raise ValidationError(f"unknown payment method; one of {known}", field="payment_method",
                              detail_de=f"Unbekannte Zahlungsart; möglich sind {known}")
    return provider


def all_providers() -> list[Provider]:
    return list(_REGISTRY.values())


def term_days(method: str | None) -> int:
    """Payment term of *method* in days (an unknown or missing method: due at once)."""
    provider = _REGISTRY.get(method or "")
    return provider.term_days if provider else 0


CASH = register(Provider("cash", "Cash", "Bargeld", takes_given=True))
CARD = register(Provider("card", "Card", "Karte", reference="card terminal's reference",
                         reference_de="die Belegnummer des Kartenterminals", reference_required=True))
TRANSFER = register(Provider("transfer", "Bank transfer", "Überweisung", reference="payment reference",
                             reference_de="den Verwendungszweck", term_days=14))
SEPA = register(Provider("sepa", "SEPA direct debit", "SEPA-Lastschrift", reference="mandate reference",
                         reference_de="die Mandatsreferenz", term_days=14))
ONLINE = register(Provider("online", "Online", "Online", reference="payment service's transaction id",
                           reference_de="die Transaktionsnummer des Zahlungsdienstes", reference_required=True))
VOUCHER = register(Provider("voucher", "Choice voucher", "Wahlgutschein", reference="voucher code",
                            reference_de="den Gutscheincode"))
NONE = register(Provider("none", "Nothing to pay", "Nichts zu zahlen"))
