"""The office app's words in German and English (German first: the staff's language)."""

from __future__ import annotations

LANGS = ("de", "en")

TEXT = {
    "de": {
        "app": "Tessera Büro", "login": "Anmelden", "user": "Benutzername", "password": "Passwort",
        "logout": "Abmelden", "setup_title": "Passwort festlegen", "setup_intro": "Legen Sie das Passwort für {u} "
        "({r}) fest. Mindestens 12 Zeichen.", "password2": "Passwort wiederholen", "save": "Passwort speichern",
        "setup_done": "Passwort gespeichert. Bitte melden Sie sich an.",
        "e_short": "Das Passwort braucht mindestens 12 Zeichen.", "e_same": "Die Passwörter stimmen nicht überein.",
        "e_login": "Benutzername oder Passwort falsch.",
        "e_locked": "Zu viele Fehlversuche: gesperrt bis {t} Uhr.",
        "e_link": "Dieser Link ist nicht (mehr) gültig: {d}. Bitte einen neuen Link anfordern.",
        "e_form": "Das Formular kam nicht von dieser Seite oder ist abgelaufen. Bitte neu laden und erneut senden.",
        "expired": "Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an.",
        "start": "Übersicht", "hello": "Angemeldet als {u} ({r})", "sales": "Verkäufe heute",
        "channel": "Kanal", "orders": "Bestellungen", "total": "Summe", "devices": "Geräte",
        "device": "Gerät", "role": "Rolle", "state": "Zustand", "last_sync": "Letzter Abgleich",
        "online": "online", "offline": "offline", "never": "nie", "no_devices": "Noch keine Geräte angemeldet.",
        "queues": "Offene Arbeit", "conflicts": "Offene Konflikte", "print": "Wartende Druckaufträge",
        "mail": "Wartende E-Mails", "all": "Zusammen",
        # work screens: conflicts and mail outbox
        "conflict_list": "Konflikte", "conflict": "Konflikt", "time": "Zeit", "node": "Gerät (Knoten)",
        "op_kind": "Vorgang", "reason": "Grund", "op_body": "Inhalt des Vorgangs", "note": "Notiz zur Lösung",
        "resolve": "Als gelöst markieren", "f_open": "offen", "f_resolved": "gelöst", "f_all": "alle",
        "e_note": "Bitte eine Notiz (bis 500 Zeichen) eingeben.", "e_resolved": "Dieser Konflikt ist schon gelöst.",
        "mail_list": "E-Mails", "recipient": "Empfänger", "subject": "Betreff", "attempts": "Versuche",
        "f_waiting": "wartet", "f_sent": "gesendet", "f_failed": "fehlgeschlagen", "last_error": "Letzter Fehler",
        # mail detail: where sent mails can be read with their links (demo inbox)
        "inbox_note": "Gesendete E-Mails stehen hier ohne ihre persönlichen Links. Mit Links lesen Sie sie im "
                      "Test-Postfach:",
        "ch_shop": "Webshop", "ch_phone": "Telefon / Büro", "ch_cashdesk": "Kasse", "ch_counter": "Schalter",
        "other": "English",
        # list screens
        "customers": "Kunden", "number": "Nummer", "name": "Name", "town": "Ort", "email": "E-Mail",
        "date": "Datum", "customer": "Kunde", "filter": "Suche", "apply": "Filtern", "csv": "CSV",
        "all_channels": "Alle Kanäle", "page_of": "Seite {p} von {n} ({t} Einträge)", "prev": "zurück",
        "next": "weiter", "no_rows": "Nichts gefunden.", "not_found": "Nicht gefunden.",
        "st_paid": "bezahlt", "st_open": "offen", "st_pending": "Zahlung läuft", "cards": "Karten",
        "lines": "Positionen", "payments": "Zahlungen", "address": "Adresse", "phone": "Telefon",
        "product": "Produkt", "holder": "Inhaber", "valid": "Gültig", "price": "Preis", "method": "Art",
        "amount": "Betrag", "kind": "Art", "revoked": "gesperrt", "sort_by": "Sortieren nach {c}",
        "order": "Bestellung", "ps_pending": "ausstehend", "ps_paid": "bezahlt", "ps_failed": "fehlgeschlagen",
        "ps_refunded": "erstattet",
        # devices screen
        "dv_nodes": "Angemeldete Geräte", "dv_venues": "Spielstätten", "dv_push": "Letzter Upload",
        "dv_pull": "Letzter Download", "dv_last_op": "Letzte Buchung", "dv_skew": "Uhrabweichung",
        "dv_revoke": "Sperren", "dv_reason": "Grund", "dv_enroll": "Gerät anmelden", "dv_make": "Code erzeugen",
        "dv_venues_hint": "IDs mit Komma getrennt; leer = alle", "dv_codes": "Anmeldecodes", "dv_code_id": "Code-ID",
        "dv_attempts": "Versuche übrig", "dv_expires": "Gültig bis", "dv_no_codes": "Noch keine Anmeldecodes.",
        "dv_code_for": "Anmeldecode für {n}",
        "dv_code_once": "Dieser Code wird nur jetzt angezeigt. Am Gerät eingeben oder den QR-Code scannen; "
        "gültig 24 Stunden, einmal verwendbar.",
        "dv_confirm": "Alle Schlüssel von {n} sperren (Grund: {r})? Das Gerät kann danach nicht mehr abgleichen; "
        "das lässt sich nicht rückgängig machen.", "dv_revoke_now": "Jetzt sperren", "dv_cancel": "Abbrechen",
        "e_admin": "Das dürfen nur Administratoren.", "e_reason": "Bitte einen Grund wählen.",
        "rs_compromised": "kompromittiert", "rs_lost": "verloren", "rs_retired": "ausgemustert",
        "rs_rotated": "Schlüssel gewechselt", "dr_cashdesk": "Kasse", "dr_counter": "Schalter", "dr_gate": "Einlass",
        "dr_hub": "Hub", "dv_all_venues": "alle",
        "cs_open": "offen", "cs_used": "verwendet", "cs_expired": "abgelaufen", "cs_dead": "gesperrt (Fehlversuche)",
    },
    "en": {
        "app": "Tessera office", "login": "Log in", "user": "User name", "password": "Password",
        "logout": "Log out", "setup_title": "Set your password", "setup_intro": "Set the password for {u} ({r}). "
        "At least 12 characters.", "password2": "Repeat the password", "save": "Save password",
        "setup_done": "Password saved. Please log in.",
        "e_short": "The password needs at least 12 characters.", "e_same": "The passwords do not match.",
        "e_login": "Wrong user name or password.",
        "e_locked": "Too many failed attempts: locked until {t}.",
        "e_link": "This link is not valid (any more): {d}. Please ask for a new link.",
        "e_form": "The form did not come from this page or has expired. Please reload and send it again.",
        "expired": "Your session has ended. Please log in again.",
        "start": "Overview", "hello": "Logged in as {u} ({r})", "sales": "Sales today",
        "channel": "Channel", "orders": "Orders", "total": "Total", "devices": "Devices",
        "device": "Device", "role": "Role", "state": "State", "last_sync": "Last sync",
        "online": "online", "offline": "offline", "never": "never", "no_devices": "No devices enrolled yet.",
        "queues": "Waiting work", "conflicts": "Open conflicts", "print": "Print jobs waiting",
        "mail": "Mails waiting", "all": "All",
        # work screens: conflicts and mail outbox
        "conflict_list": "Conflicts", "conflict": "Conflict", "time": "Time", "node": "Device (node)",
        "op_kind": "Operation", "reason": "Reason", "op_body": "Operation body", "note": "Resolution note",
        "resolve": "Mark resolved", "f_open": "open", "f_resolved": "resolved", "f_all": "all",
        "e_note": "Please enter a note (up to 500 characters).", "e_resolved": "This conflict is resolved already.",
        "mail_list": "Mail", "recipient": "Recipient", "subject": "Subject", "attempts": "Attempts",
        "f_waiting": "waiting", "f_sent": "sent", "f_failed": "failed", "last_error": "Last error",
        # mail detail: where sent mails can be read with their links (demo inbox)
        "inbox_note": "Sent mails are shown here without their personal links. Read them with their links in the "
                      "test inbox:",
        "ch_shop": "Web shop", "ch_phone": "Phone / office", "ch_cashdesk": "Cash desk", "ch_counter": "Counter",
        "other": "Deutsch",
        # list screens
        "customers": "Customers", "number": "Number", "name": "Name", "town": "Town", "email": "E-mail",
        "date": "Date", "customer": "Customer", "filter": "Search", "apply": "Filter", "csv": "CSV",
        "all_channels": "All channels", "page_of": "Page {p} of {n} ({t} entries)", "prev": "previous",
        "next": "next", "no_rows": "Nothing found.", "not_found": "Not found.",
        "st_paid": "paid", "st_open": "open", "st_pending": "payment pending", "cards": "Cards",
        "lines": "Lines", "payments": "Payments", "address": "Address", "phone": "Phone",
        "product": "Product", "holder": "Holder", "valid": "Valid", "price": "Price", "method": "Method",
        "amount": "Amount", "kind": "Kind", "revoked": "revoked", "sort_by": "Sort by {c}",
        "order": "Order", "ps_pending": "pending", "ps_paid": "paid", "ps_failed": "failed",
        "ps_refunded": "refunded",
        # devices screen
        "dv_nodes": "Enrolled devices", "dv_venues": "Venues", "dv_push": "Last push",
        "dv_pull": "Last pull", "dv_last_op": "Last operation", "dv_skew": "Clock skew",
        "dv_revoke": "Revoke", "dv_reason": "Reason", "dv_enroll": "Enroll a device", "dv_make": "Make a code",
        "dv_venues_hint": "IDs separated by commas; empty = all", "dv_codes": "Enrollment codes",
        "dv_code_id": "Code id",
        "dv_attempts": "Attempts left", "dv_expires": "Valid until", "dv_no_codes": "No enrollment codes yet.",
        "dv_code_for": "Enrollment code for {n}",
        "dv_code_once": "This code is shown only now. Type it on the device or scan the QR code; "
        "valid for 24 hours, usable once.",
        "dv_confirm": "Revoke every key of {n} (reason: {r})? The device cannot sync afterwards; "
        "this cannot be undone.", "dv_revoke_now": "Revoke now", "dv_cancel": "Cancel",
        "e_admin": "Only administrators may do this.", "e_reason": "Please choose a reason.",
        "rs_compromised": "compromised", "rs_lost": "lost", "rs_retired": "retired",
        "rs_rotated": "key rotated", "dr_cashdesk": "Cash desk", "dr_counter": "Counter", "dr_gate": "Gate",
        "dr_hub": "Hub", "dv_all_venues": "all",
        "cs_open": "open", "cs_used": "used", "cs_expired": "expired", "cs_dead": "dead (failed attempts)",
    },
}
