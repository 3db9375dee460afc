"""The office's season rollover screen (S15) in Chromium, German and English: a dry run, the run
with its progress and the subscriptions it could not roll over grouped by reason, a confirmation
for one customer and then for all; over HTTP, a forged POST without the form token and a role
without rights change nothing. Screenshots in test-output/office/."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.base.storage import connect
from hub.app import DB_NAME
from hub.services import rollover_jobs
from tests.conftest import Hub
from tests.office import SHOTS, office_in_chromium, post_form, signed_in
from tests.rollover_scene import build

PAGE = "/office/subscriptions/rollover"
WORDS = {"de": {"tier": "Rabattstufe fehlt", "zone": "Preiskategorie geändert", "dry": "Probelauf: nichts gespeichert",
                "held": "Plätze reserviert"},
         "en": {"tier": "discount tier missing", "zone": "price zone changed", "dry": "Dry run: nothing stored",
                "held": "seats held"}}


def _scene(db, hub_dir, ids) -> None:
    build(Hub(hub_dir, db, "", ids))


def _settled(page, url: str) -> None:
    """Until the run's page says its step is over (the page reloads itself meanwhile); a deadline."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        page.goto(url)
        card = page.locator("#run-result")
        if card.get_attribute("data-running") == "no" and card.get_attribute("data-state") in ("held", "done"):
            return
        page.wait_for_load_state()
    raise AssertionError("the rollover did not settle in 30 s")


def _count(page, scope: str, key: str) -> int:
    return int(page.inner_text(f'{scope} [data-count="{key}"] b'))


def _dry_run(page, url: str, lang: str) -> None:
    w = WORDS[lang]
    page.goto(f"{url}{PAGE}?lang={lang}")
    page.select_option("#from", label="2026/27")
    page.select_option("#to", label="2027/28")
    page.fill("#renewal", "2027-05-31")
    page.click("#dry")
    page.wait_for_selector("#dry-result")
    assert w["dry"] in page.inner_text("#dry-h") and _count(page, "#dry-result", "kept") == 6
    page.screenshot(path=SHOTS / f"rollover-1-dry-{lang}.png", full_page=True)


def _held(page, lang: str) -> None:
    w = WORDS[lang]
    result = page.inner_text("#run-result")
    assert w["held"] in page.inner_text("#state") and w["tier"] in result and w["zone"] in result
    assert _count(page, "#run-result", "listed") == 3 and _count(page, "#run-result", "moved") == 1
    assert page.locator('table.listed[data-reason="wheelchair_locked"] tbody tr').count() == 1
    assert page.get_attribute("#progress", "value") == page.get_attribute("#progress", "max") == "12"
    page.screenshot(path=SHOTS / f"rollover-2-held-{lang}.png", full_page=True)


@pytest.mark.slow
def test_dry_run_run_and_confirm_in_chromium(tmp_path):
    """One walk, German then English (one hub, scene and browser instead of a walk per language):
    the dry run in both, the run in German, its result in both, the confirmations in English."""
    with office_in_chromium(tmp_path, lang="de", prepare_sample=_scene) as served:
        page, db, url = served.page, connect(served.hub_dir / DB_NAME), served.hub.url
        for lang in ("de", "en"):
            _dry_run(page, url, lang)
        assert db.execute("SELECT count(*) AS n FROM rollover_runs").fetchone()["n"] == 0

        page.goto(f"{url}{PAGE}?lang=de")
        page.select_option("#from", label="2026/27")
        page.select_option("#to", label="2027/28")
        page.fill("#renewal", "2027-05-31")
        page.click("#run")
        page.wait_for_selector("#run-result")
        _settled(page, page.url)
        _held(page, "de")
        run_page = page.url
        _settled(page, run_page + ("&" if "?" in run_page else "?") + "lang=en")
        _held(page, "en")

        party = db.execute("SELECT c.number FROM subscriptions s JOIN customers c ON c.id = s.customer_id "
                           "WHERE s.holder_name = 'Eva Party'").fetchone()["number"]
        page.fill("#numbers", party)
        page.click("#confirm-some")
        _settled(page, page.url)
        assert "2" in page.inner_text('[data-state-count="confirmed"]')
        page.click("#confirm-all")
        _settled(page, page.url)
        assert page.locator("#run-result").get_attribute("data-state") == "done"
        assert page.inner_text('[data-state-count="confirmed"]').endswith(": 7")
        assert db.execute("SELECT count(*) AS n FROM rollover_items WHERE state = 'confirmed' AND order_id IS NOT "
                          "NULL AND invoice_id IS NOT NULL").fetchone()["n"] == 7
        page.screenshot(path=SHOTS / "rollover-3-confirmed-en.png", full_page=True)
        _settled(page, run_page + ("&" if "?" in run_page else "?") + "lang=de")
        assert page.inner_text('[data-state-count="confirmed"]').endswith(": 7")
        page.screenshot(path=SHOTS / "rollover-3-confirmed-de.png", full_page=True)
        db.close()


async def test_a_forged_post_and_a_foreign_origin_change_nothing(sample_hub, aiohttp_client):
    scene = build(sample_hub)
    client = await signed_in(aiohttp_client, sample_hub, role="office")
    fields = {"from": sample_hub.ids["season"], "to": scene.new["season"], "action": "run"}
    forged = await client.post(PAGE, data={"csrf": "forged", **fields}, allow_redirects=False)
    assert forged.status == 403
    foreign = await post_form(client, PAGE, PAGE, fields, Origin="https://evil.example")
    assert foreign.status == 403
    assert sample_hub.db.execute("SELECT count(*) AS n FROM rollover_runs").fetchone()["n"] == 0
    bad = await post_form(client, PAGE, PAGE, {**fields, "renewal": "31.05.2027"})
    assert bad.status == 400
    same = await post_form(client, PAGE, PAGE, {**fields, "to": fields["from"]})
    assert same.status == 422 and "in eine andere übernommen" in await same.text()
    ok = await post_form(client, PAGE, PAGE, fields)
    assert ok.status == 303 and "?run=" in ok.headers["Location"]
    run_id = ok.headers["Location"].split("?run=")[1].split("&")[0]
    assert sample_hub.db.execute("SELECT id FROM rollover_runs WHERE id = ?", (run_id,)).fetchone()
    deadline = time.monotonic() + 60  # the step runs on in its thread: let it end before the hub's database goes
    while rollover_jobs.running(run_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not rollover_jobs.running(run_id)
