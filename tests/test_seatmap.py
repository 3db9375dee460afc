"""The seat map renderer (B8): structure of the SVG and JSON for the sample theatre's plan
and its variants, states, escaping of hostile names, the legend, deterministic bytes; the
API operation `GET /performances/{id}/seat-map` over real HTTP; and (slow) the SVG in
Debian's Chromium at 1024x768 and 1366x768: seats large enough to touch, a click on a seat's
coordinates hits that seat. Screenshots in test-output/seatmap/."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from core.base import sql
from core.base.clock import utcnow
from core.base.errors import ValidationError
from core.base.node import this_node
from core.catalog.seating import seatmap
from core.catalog.seating.seatmap import MapPlan, MapSeat, seat_map_json, seat_map_svg
from core.catalog.seating.seatmap_data import variant_map
from core.catalog.seating.seatmap_page import preview_html
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from tests.helpers import call, problem

HELD, HIDDEN, OTHER_POOL, SELECTED, TAKEN = (seatmap.HELD, seatmap.HIDDEN, seatmap.OTHER_POOL, seatmap.SELECTED,
                                            seatmap.TAKEN)
NS = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "seatmap"


def seat_elements(svg: str) -> list[ET.Element]:
    return [g for g in ET.fromstring(svg).iter(f"{NS}g") if "data-seat-id" in g.attrib]


def house_variants(hub) -> dict[str, str]:
    rows = hub.db.execute("SELECT id, name FROM plan_variants WHERE plan_id = ?",
                          (hub.ids["plans"]["Großes Haus"],)).fetchall()
    return {r["name"]: r["id"] for r in rows}


def all_text(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{NS}text")]


# -- structure ---------------------------------------------------------------------------------


def test_every_seat_of_each_variant_is_drawn_once_and_removed_seats_are_absent(sample_hub):
    variants = house_variants(sample_hub)
    drawn = {}
    for name, variant_id in variants.items():
        plan, seats = variant_map(sample_hub.db, variant_id)
        ids = [g.get("data-seat-id") for g in seat_elements(seat_map_svg(plan, seats, {}))]
        assert len(ids) == len(set(ids)) == len(seats), name
        assert set(ids) == {s.id for s in seats}
        assert [s["id"] for s in seat_map_json(plan, seats, {})["seats"]] == [s.id for s in seats]
        drawn[name] = set(ids)
    removed = {r["seat_id"] for r in sample_hub.db.execute(
        "SELECT seat_id FROM variant_removed_seats WHERE variant_id = ?", (variants["Bühnenerweiterung"],))}
    pit = {r["id"] for r in sample_hub.db.execute(
        "SELECT id FROM seats WHERE variant_id = ?", (variants["Orchestergraben überbaut"],))}
    base = drawn["Standard (Orchestergraben offen)"]
    assert len(base) == 800 and len(removed) == 40 and len(pit) == 32
    assert drawn["Bühnenerweiterung"] == base - removed and not removed & drawn["Bühnenerweiterung"]
    assert drawn["Orchestergraben überbaut"] == base | pit and not pit & base


def test_states_are_drawn_as_given_and_hidden_seats_are_left_out(sample_hub):
    plan, seats = variant_map(sample_hub.db, house_variants(sample_hub)["Standard (Orchestergraben offen)"])
    given = {seats[0].id: TAKEN, seats[1].id: OTHER_POOL, seats[2].id: HELD, seats[3].id: SELECTED,
             seats[4].id: HIDDEN}
    elements = {g.get("data-seat-id"): g for g in seat_elements(seat_map_svg(plan, seats, given))}
    assert seats[4].id not in elements and len(elements) == len(seats) - 1
    for seat in seats[5:]:
        assert elements[seat.id].get("data-state") == "free" and elements[seat.id].get("tabindex") == "0"
    for seat_id, state in given.items():
        if state != HIDDEN:
            assert elements[seat_id].get("data-state") == state
            assert elements[seat_id].get("role") == "button"
    assert elements[seats[3].id].get("tabindex") == "0"  # selected: focusable to unselect
    for seat_id in (seats[0].id, seats[1].id, seats[2].id):  # not sellable: not in the tab order
        assert elements[seat_id].get("tabindex") is None and elements[seat_id].get("aria-disabled") == "true"
    # each state looks different without colour: its own outline dash / pattern / cross
    bodies = {state: ET.tostring(elements[sid]).decode() for sid, state in given.items() if state != HIDDEN}
    assert "M-8-8L8 8" in bodies[TAKEN] and "tm-hatch" in bodies[OTHER_POOL] and "tm-dots" in bodies[HELD]
    assert 'stroke-width="3"' in bodies[SELECTED]
    as_json = {s["id"]: s["state"] for s in seat_map_json(plan, seats, given)["seats"]}
    assert seats[4].id not in as_json and as_json[seats[0].id] == TAKEN and as_json[seats[9].id] == "free"


def test_a_row_is_labelled_at_both_ends_and_seats_are_spoken_in_german_and_english(sample_hub):
    plan, seats = variant_map(sample_hub.db, house_variants(sample_hub)["Standard (Orchestergraben offen)"])
    svg = seat_map_svg(plan, seats, {})
    texts = all_text(svg)
    assert texts.count("Parkett") == 1 and texts.count("1. Rang") == 1 and texts.count("2. Rang") == 1
    assert texts.count("20") >= 2 + 2  # row 20 at both ends (Parkett), plus seat labels "20"
    seat = next(s for s in seats if s.section == "Parkett" and s.row == "3" and s.label == "12")
    label = next(g for g in seat_elements(svg) if g.get("data-seat-id") == seat.id).get("aria-label")
    assert label == "Reihe 3, Platz 12, Parkett, frei"
    english = seat_map_svg(plan, seats, {seat.id: TAKEN}, lang="en")
    assert next(g for g in seat_elements(english) if g.get("data-seat-id") == seat.id).get(
        "aria-label") == "Row 3, Seat 12, Parkett, taken"
    chair = next(s for s in seats if s.wheelchair)
    element = next(g for g in seat_elements(svg) if g.get("data-seat-id") == chair.id)
    assert "Rollstuhlplatz" in element.get("aria-label") and element.find(f"{NS}use") is not None
    buddy = next(s for s in seats if s.companion)
    element = next(g for g in seat_elements(svg) if g.get("data-seat-id") == buddy.id)
    assert "Begleitplatz" in element.get("aria-label")
    assert any(u.get("href") == "#tm-companion" for u in element.iter(f"{NS}use"))


def test_the_legend_lists_every_zone_with_its_colour_and_the_symbols(sample_hub):
    plan, seats = variant_map(sample_hub.db, house_variants(sample_hub)["Standard (Orchestergraben offen)"])
    svg = seat_map_svg(plan, seats, {})
    legend = next(g for g in ET.fromstring(svg).iter(f"{NS}g") if g.get("class") == "legend")
    items = {"".join(t.itertext()): item for item in legend for t in item.iter(f"{NS}text")}
    colours = {"Preiskategorie I": "#b3261e", "Preiskategorie II": "#e8710a", "Preiskategorie III": "#188038",
               "Preiskategorie IV": "#1967d2"}
    for name, colour in colours.items():
        assert items[name].find(f"{NS}rect").get("fill") == colour
    assert {"frei", "belegt", "anderes Kontingent", "reserviert", "ausgewählt", "Rollstuhlplatz",
            "Begleitplatz"} <= set(items)
    zones = seat_map_json(plan, seats, {})["zones"]
    assert [(z["name"], z["color"]) for z in zones] == list(colours.items())


def test_the_same_input_gives_the_same_bytes(sample_hub):
    plan, seats = variant_map(sample_hub.db, house_variants(sample_hub)["Orchestergraben überbaut"])
    states = {seats[i].id: TAKEN for i in range(0, 300, 7)} | {seats[5].id: SELECTED}
    reordered = dict(reversed(list(states.items())))
    assert seat_map_svg(plan, seats, states) == seat_map_svg(plan, seats, reordered)
    again_plan, again_seats = variant_map(sample_hub.db, house_variants(sample_hub)["Orchestergraben überbaut"])
    assert seat_map_svg(again_plan, again_seats, states) == seat_map_svg(plan, seats, states)


HOSTILE = '</text><script>alert(1)</script><text x="0" onload="alert(2)">&amp;\x00\x0b"\''


def hostile_map() -> tuple[MapPlan, list[MapSeat]]:
    plan = MapPlan('p" onload="x', f"Haus {HOSTILE}", 1.0)
    seats = [MapSeat(f"s{i}", f"Sektion {HOSTILE}", f"R{HOSTILE}", f"{i}{HOSTILE}", float(i), 1.0,
                     f"z{HOSTILE}", f"Zone {HOSTILE}", 'red" onclick="alert(3)', wheelchair=i == 1)
             for i in range(1, 4)]
    return plan, seats


@pytest.mark.parametrize("lang", ["de", "en"])
def test_hostile_section_row_seat_and_zone_names_are_escaped(lang):
    plan, seats = hostile_map()
    svg = seat_map_svg(plan, seats, {"s2": TAKEN}, lang=lang)
    root = ET.fromstring(svg)  # well-formed XML despite NUL and vertical tab in the names
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert not [(e.tag, a) for e in root.iter() for a in e.attrib if a.lower().startswith("on")]
    clean = HOSTILE.replace("\x00", "\ufffd").replace("\x0b", "\ufffd")
    texts = all_text(svg)
    assert f"Sektion {clean}" in texts and f"R{clean}" in texts and f"Zone {clean}" in texts
    seat = next(g for g in seat_elements(svg) if g.get("data-seat-id") == "s3")
    assert seat.get("aria-label").startswith(f"{'Reihe' if lang == 'de' else 'Row'} R{clean}, ")
    assert seat.get("data-zone") == f"z{clean}"
    # a colour that is not #rrggbb is drawn grey, never copied into an attribute
    assert "onclick" not in svg and all(r.get("fill") != 'red" onclick="alert(3)' for r in root.iter(f"{NS}rect"))
    assert root.get("data-plan-id") == 'p" onload="x'
    assert seat_map_json(plan, seats, {})["seats"][0]["color"] == "#888888"


def test_an_unknown_state_or_language_is_refused():
    plan, seats = hostile_map()
    with pytest.raises(ValidationError, match="unknown state 'sold'"):
        seat_map_svg(plan, seats, {"s1": "sold"})
    with pytest.raises(ValidationError, match="unknown state"):
        seat_map_json(plan, seats, {"s1": "FREE"})
    with pytest.raises(ValidationError, match="unknown language 'fr'"):
        seat_map_svg(plan, seats, {}, lang="fr")


# -- the API -----------------------------------------------------------------------------------


def sell_and_block(hub, performance: str) -> tuple[list[str], list[str]]:
    """Sell two seats at the hub and move two to the blocked pool: the map must show both."""
    seats = [r["id"] for r in hub.db.execute(
        "SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE c.name = 'Parkett' "
        "AND s.row_label = '5' AND s.plan_id = ? ORDER BY s.x LIMIT 4", (hub.ids["plans"]["Großes Haus"],))]
    sell(hub.db, this_node(hub.db), SaleIn(performance_id=performance, seat_ids=seats[:2], payment_method="card",
                                           payment_reference="T-1"),
         pool=contingents.HUB, channel="shop", now=utcnow())
    contingents.move_seats(hub.db, performance, seats[2:], contingents.BLOCKED, utcnow())
    return seats[:2], seats[2:]


async def test_the_api_answers_json_by_default_and_svg_on_request(api):
    hub = api.hub
    performance = hub.ids["rings"]["A"][0]
    sold, blocked = sell_and_block(hub, performance)
    for role in ("shop", "agency", "office"):
        token = (await call(api, "POST", "/tokens", {"name": f"map {role}", "role": role}, status=201))["token"]
        data = await call(api, "GET", f"/performances/{performance}/seat-map", token=token, status=200)
        states = {s["id"]: s["state"] for s in data["seats"]}
        assert {states[s] for s in sold} == {TAKEN} and {states[s] for s in blocked} == {OTHER_POOL}
        if role == "agency":  # an agency's map is of its own pool (empty here): the hub's seats are not its
            assert set(states.values()) == {TAKEN, OTHER_POOL}
            continue
        assert sum(1 for v in states.values() if v == "free") == len(states) - 4
    resp = await api.get(f"/api/v1/performances/{performance}/seat-map?format=svg&lang=en", headers=hub.headers())
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    svg = (await resp.read()).decode()
    states = {g.get("data-seat-id"): g.get("data-state") for g in seat_elements(svg)}
    assert {states[s] for s in sold} == {TAKEN} and len(states) == len(data["seats"])
    assert "<script" not in svg and "Row 5, Seat" in svg
    # JSON is cached by the read cache; a new sale must still show at once
    more = [s["id"] for s in data["seats"] if s["state"] == "free"][:1]
    sell(hub.db, this_node(hub.db), SaleIn(performance_id=performance, seat_ids=more, payment_method="card",
                                           payment_reference="T-2"),
         pool=contingents.HUB, channel="shop", now=utcnow())
    again = await call(api, "GET", f"/performances/{performance}/seat-map", status=200)
    assert {s["id"]: s["state"] for s in again["seats"]}[more[0]] == TAKEN
    document = await call(api, "GET", "/openapi.json", status=200)
    content = document["paths"]["/api/v1/performances/{id}/seat-map"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "image/svg+xml"}


async def test_an_unknown_performance_is_a_404_naming_it_and_changes_nothing(api):
    before = sql.generation(api.hub.db)
    unknown = "01900000-0000-7000-8000-000000000000"
    body = await problem(api, "GET", f"/performances/{unknown}/seat-map", status=404, slug="not-found")
    assert body["detail"] == f"performance {unknown} does not exist"
    assert sql.generation(api.hub.db) == before


async def test_a_malformed_performance_id_is_a_400(api):
    for bad in ("not-an-id", "01900000-0000-7000-8000-00000000000G", "%27%20OR%201=1--"):
        body = await problem(api, "GET", f"/performances/{bad}/seat-map", status=400, slug="invalid-parameter")
        assert "must be an id (UUID)" in body["detail"]


async def test_an_unknown_format_or_language_is_a_400(api):
    performance = api.hub.ids["performances"][0]
    for bad in ("format=pdf", "format=SVG", "format=", "lang=fr"):
        body = await problem(api, "GET", f"/performances/{performance}/seat-map?{bad}", status=400,
                             slug="invalid-parameter")
        assert bad.split("=")[0] in body["detail"] and "must be one of" in body["detail"]


# -- in Chromium (slow) -------------------------------------------------------------------------


@pytest.mark.slow
def test_the_sample_plan_in_chromium_is_large_enough_to_touch_and_clicks_hit_the_seat(sample_hub):
    from tests.browsers import chromium

    variants = house_variants(sample_hub)
    plan, seats = variant_map(sample_hub.db, variants["Orchestergraben überbaut"])
    states = {s.id: TAKEN for s in seats if s.section == "Parkett" and s.row in ("4", "5") and int(s.label) < 9}
    states |= {s.id: OTHER_POOL for s in seats if s.section == "1. Rang" and s.row == "1"}
    states |= {s.id: HELD for s in seats if s.section == "2. Rang" and s.row == "2" and int(s.label) > 12}
    states |= {s.id: SELECTED for s in seats if s.section == "Parkett" and s.row == "10" and s.label in "789"}
    page_html = preview_html(seat_map_svg(plan, seats, states), f"{plan.name} – Orchestergraben überbaut")
    SHOTS.mkdir(parents=True, exist_ok=True)
    target = next(s for s in seats if s.section == "Parkett" and s.row == "12" and s.label == "10")
    with chromium() as browser:
        for width, height in ((1024, 768), (1366, 768)):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_content(page_html)
            sizes = page.eval_on_selector_all(
                "svg [data-seat-id]", "els => els.map(e => { const r = e.getBoundingClientRect();"
                                  " return [r.width, r.height]; })")
            assert len(sizes) == len(seats)
            smallest = min(min(w, h) for w, h in sizes)
            print(f"smallest seat at {width}x{height}: {smallest:.1f} px")
            if width == 1024:
                assert smallest >= 28, f"a seat is {smallest:.1f} px at {width} wide"
            page.screenshot(path=SHOTS / f"grosses-haus-{width}x{height}.png", full_page=True)
            page.screenshot(path=SHOTS / f"grosses-haus-{width}x{height}-top.png")
            seat = page.locator(f'[data-seat-id="{target.id}"]')
            seat.scroll_into_view_if_needed()
            box = seat.bounding_box()
            page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.9)
            assert page.locator("#picked").get_attribute("data-picked") == target.id
            assert seat.get_attribute("data-state") == "selected"
            page.keyboard.press("Tab")  # keyboard: the first free seat takes the focus
            assert page.evaluate("document.activeElement.dataset.state") == "free"
            page.close()
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        studio_plan, studio_seats = variant_map(sample_hub.db, sample_hub.db.execute(
            "SELECT id FROM plan_variants WHERE plan_id = ?", (sample_hub.ids["plans"]["Studio"],)
        ).fetchone()["id"])
        page.set_content(preview_html(seat_map_svg(studio_plan, studio_seats, {}, lang="en"), "Studio"))
        page.screenshot(path=SHOTS / "studio-1024x768.png", full_page=True)
        page.close()


def test_a_long_seat_label_gets_a_smaller_font_so_it_stays_inside_its_seat():
    plan = MapPlan("p", "Saal", 1.0)
    seats = [MapSeat("a", "S", "1", "7", 1.0, 1.0, "1", "I", "#ffffff"),
             MapSeat("b", "S", "1", "1012", 2.0, 1.0, "1", "I", "#ffffff")]
    labels = {g.get("data-seat-id"): g.find(f"{NS}text") for g in seat_elements(seat_map_svg(plan, seats, {}))}
    assert labels["a"].get("style") is None and labels["b"].get("style") == "font-size:9px"
    assert labels["a"].get("fill") == "#111111"  # dark ink on a light zone colour
