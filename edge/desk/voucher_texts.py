"""The words of the desk's choice-voucher redemption screen (`/vouchers`), German and English.

Kept apart from `web.py`'s table as the subscription sale's words are (`subscription_texts.py`);
`web.py` merges them into its `TEXT`, so the page's script finds them in the same i18n object.
Placeholders in braces are filled by the script.
"""

from __future__ import annotations

VOUCHER_TEXT: dict[str, dict[str, str]] = {
    "de": {
        "choice_vouchers": "Wahlgutscheine",
        "cv_scan": "Wahlgutschein scannen oder Nummer eingeben", "cv_add": "Hinzufügen",
        "cv_vouchers": "Gutscheine", "cv_none": "Noch kein Gutschein: Gutschein scannen.",
        "cv_remove": "Entfernen", "cv_state_open": "offen", "cv_state_redeemed": "eingelöst",
        "cv_state_expired": "abgelaufen", "cv_state_void": "ungültig (Abo storniert)",
        "cv_full_price": "ohne Ermäßigung", "cv_valid_until": "gültig bis {date}",
        "cv_not_open": "Gutschein {number} ist nicht einlösbar: {state}.",
        "cv_twice": "Gutschein {number} ist schon in der Liste.",
        "cv_too_many": "Höchstens {n} Gutscheine für ein Ticket.",
        "cv_performance": "Vorstellung", "cv_no_performance": "Keine Vorstellung, für die alle Gutscheine "
        "gelten, liegt noch vor uns.",
        "cv_seat": "Platz", "cv_zone_free": "{n} frei", "cv_no_seats": "Keine freien Plätze dieser Vorstellung "
        "im Kontingent dieser Kasse.",
        "cv_pick_zone": "Preiszone antippen, dann einen Platz.",
        "cv_row": "Reihe", "cv_seat_short": "Platz", "cv_zone": "Preiskategorie {code}",
        "cv_rule": "Einlösung", "cv_rule_value": "nach Wert", "cv_rule_value_hint": "Ticket mit der "
        "Ermäßigungsart des Gutscheins",
        "cv_rule_payment": "als Zahlungsmittel", "cv_rule_payment_hint": "normales Ticket zum normalen Preis",
        "cv_split": "Aufteilung", "cv_ticket_price": "Ticketpreis", "cv_used": "durch Gutscheine",
        "cv_lapsed": "verfällt (keine Auszahlung)", "cv_rest": "Rest zu zahlen", "cv_discount": "Ermäßigungsart",
        "cv_nothing": "Gutscheine scannen, dann Vorstellung und Platz wählen.",
        "cv_redeem": "Einlösen", "cv_redeem_pay": "Einlösen und {amount} kassieren",
        "cv_start_over": "Abbrechen", "cv_done": "Eingelöst", "cv_ticket": "Ticket",
        "cv_printed": "Beleg und Ticket", "cv_next": "Nächste Einlösung",
        "cv_quote_wait": "Bitte Gutscheine, Vorstellung und Platz wählen.",
        "cv_seat_gone": "Der Platz ist nicht mehr frei: bitte einen anderen wählen.",
    },
    "en": {
        "choice_vouchers": "Choice vouchers",
        "cv_scan": "Scan a choice voucher or type its number", "cv_add": "Add",
        "cv_vouchers": "Vouchers", "cv_none": "No voucher yet: scan one.",
        "cv_remove": "Remove", "cv_state_open": "open", "cv_state_redeemed": "redeemed",
        "cv_state_expired": "expired", "cv_state_void": "void (subscription cancelled)",
        "cv_full_price": "no discount", "cv_valid_until": "valid until {date}",
        "cv_not_open": "Voucher {number} cannot be redeemed: {state}.",
        "cv_twice": "Voucher {number} is already in the list.",
        "cv_too_many": "At most {n} vouchers for one ticket.",
        "cv_performance": "Performance", "cv_no_performance": "No performance that every voucher is valid "
        "for lies ahead.",
        "cv_seat": "Seat", "cv_zone_free": "{n} free", "cv_no_seats": "No free seats of this performance in "
        "this desk's contingent.",
        "cv_pick_zone": "Tap a price zone, then a seat.",
        "cv_row": "Row", "cv_seat_short": "Seat", "cv_zone": "Price category {code}",
        "cv_rule": "Redemption", "cv_rule_value": "by value", "cv_rule_value_hint": "ticket with the voucher's "
        "discount type",
        "cv_rule_payment": "as payment", "cv_rule_payment_hint": "ordinary ticket at its normal price",
        "cv_split": "Split", "cv_ticket_price": "Ticket price", "cv_used": "by vouchers",
        "cv_lapsed": "lapses (no cash refund)", "cv_rest": "Rest to pay", "cv_discount": "Discount type",
        "cv_nothing": "Scan vouchers, then choose a performance and a seat.",
        "cv_redeem": "Redeem", "cv_redeem_pay": "Redeem and take {amount}",
        "cv_start_over": "Cancel", "cv_done": "Redeemed", "cv_ticket": "Ticket",
        "cv_printed": "Receipt and ticket", "cv_next": "Next redemption",
        "cv_quote_wait": "Please choose vouchers, a performance and a seat.",
        "cv_seat_gone": "The seat is no longer free: please choose another.",
    },
}
