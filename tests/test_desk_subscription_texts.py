"""The desk's subscription screen speaks German and English: both tables have the same words
with the same placeholders, every word the script asks for (`T.name`, `T[\"name\"]`) exists in
both (a missing one would show "undefined" to the cashier), and the page names only words that
exist (the template is StrictUndefined, so a missing one is an error when it is rendered)."""

from __future__ import annotations

import re
from pathlib import Path

from edge.desk import web
from edge.desk.subscription_texts import SUBSCRIPTION_TEXT

DESK = Path(web.__file__).resolve().parent
SCRIPT = DESK / "static" / "subscriptions.js"


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_both_languages_have_the_same_words_and_placeholders():
    de, en = SUBSCRIPTION_TEXT["de"], SUBSCRIPTION_TEXT["en"]
    assert set(de) == set(en)
    assert {k: placeholders(v) for k, v in de.items()} == {k: placeholders(v) for k, v in en.items()}
    assert all(v.strip() for v in [*de.values(), *en.values()])


def test_every_word_the_script_uses_is_in_the_desk_texts_of_both_languages():
    script = SCRIPT.read_text()
    used = set(re.findall(r"\bT\.(\w+)", script)) | set(re.findall(r"\bT\[\"(\w+)\"\]", script))
    # names built at run time: kinds, forms
    used |= {f"sub_kind_{k}" for k in ("ring", "choice", "combi", "voucher")}
    used |= {f"sub_form_{f}" for f in ("pass", "single_tickets", "both")}
    used |= {m.group(1) for m in re.finditer(r'"(sub_err_\w+)"', script)}
    assert used, "the script reads no words?"
    for lang in ("de", "en"):
        missing = sorted(used - set(web.TEXT[lang]))
        assert missing == [], (lang, missing)


def test_the_page_names_only_words_that_exist():
    page = (DESK / "templates" / "subscriptions.html").read_text()
    named = set(re.findall(r"\bt\.(\w+)", page)) | {f"sub_step_{k}" for k in
                                                       ("product", "dates", "seats", "variants", "customer", "pay")}
    for lang in ("de", "en"):
        assert sorted(named - set(web.TEXT[lang])) == [], lang
