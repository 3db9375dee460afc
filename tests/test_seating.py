"""Seating plans: import, variants, and refusing duplicate or overlapping seats."""

import pytest

from core.base.errors import NotFound, ValidationError
from core.catalog.seating.csv_import import plan_from_csv
from core.catalog.seating.geometry import Place, check_places
from core.catalog.seating.variants import variant_seats, variant_zone_ids
from tests.helpers import call, problem, table_counts


def test_seats_closer_than_a_seat_width_overlap():
    a = Place("Parkett", "1", "1", 0.0, 0.0)
    check_places([a, Place("Parkett", "1", "2", 1.0, 0.0)], 1.0, "plan")  # touching is fine
    with pytest.raises(ValidationError, match=r"Parkett row 1 seat 1 at \(0, 0\) and Parkett row 1 seat 2 .* overlap"):
        check_places([a, Place("Parkett", "1", "2", 0.5, 0.9)], 1.0, "plan")


def test_the_same_seat_twice_is_a_duplicate():
    with pytest.raises(ValidationError, match="duplicate seat Rang row 2 seat 7"):
        check_places([Place("Rang", "2", "7", 0, 0), Place("Rang", "2", "7", 5, 5)], 1.0, "plan")


def test_the_main_house_has_800_seats_and_its_variants_add_and_remove_rows(sample_hub):
    plan_id = sample_hub.ids["plans"]["Großes Haus"]
    variants = {v["name"]: v["id"] for v in sample_hub.db.execute(
        "SELECT id, name FROM plan_variants WHERE plan_id = ?", (plan_id,))}
    base = variant_seats(sample_hub.db, variants["Standard (Orchestergraben offen)"])
    pit = variant_seats(sample_hub.db, variants["Orchestergraben überbaut"])
    extension = variant_seats(sample_hub.db, variants["Bühnenerweiterung"])
    assert len(base) == 800 and len(pit) == 832 and len(extension) == 760
    assert {s["section"] for s in base} == {"Parkett", "1. Rang", "2. Rang"}
    assert {s["zone"] for s in base} == {"1", "2", "3", "4"}
    # the same physical seat keeps its id across variants (S2: same seat in every performance)
    assert {s["id"] for s in base} < {s["id"] for s in pit}
    assert sum(s["wheelchair"] for s in base) == 2 and sum(s["companion"] for s in base) == 2



def test_a_variants_zones_are_those_of_its_seats(sample_hub):
    """variant_zone_ids reads distinct zones, not seats: the same set as the seats' zones, also after
    a variant's own seat is made inactive (and the only seat of a zone: the zone goes too)."""
    db = sample_hub.db
    variants = [r["id"] for r in db.execute("SELECT id FROM plan_variants")]
    assert len(variants) >= 4
    for variant in variants:
        assert variant_zone_ids(db, variant) == {s["zone_id"] for s in variant_seats(db, variant)}
    own = db.execute("SELECT id, variant_id, zone_id FROM seats WHERE variant_id IS NOT NULL LIMIT 1").fetchone()
    others = db.execute("SELECT id FROM seats WHERE id <> ? AND zone_id = ? AND active = 1",
                        (own["id"], own["zone_id"])).fetchall()
    db.execute("UPDATE seats SET active = 0 WHERE id IN ({})".format(", ".join("?" * (len(others) + 1))),
               (own["id"], *(r["id"] for r in others)))
    assert own["zone_id"] not in variant_zone_ids(db, own["variant_id"])
    assert variant_zone_ids(db, own["variant_id"]) == {s["zone_id"] for s in variant_seats(db, own["variant_id"])}
    with pytest.raises(NotFound):
        variant_zone_ids(db, "0" * 8 + "-0000-7000-8000-" + "0" * 12)

def csv_plan(*lines):
    return "section,row,seat,x,y,zone,wheelchair,companion,variant,removed_in\n" + "\n".join(lines) + "\n"


def test_a_plan_reads_from_csv_with_variants():
    plan = plan_from_csv(csv_plan("Saal,1,1,1,1,A,,,,Bühne", "Saal,1,2,2,1,A,yes,,,", "Saal,A,1,1,0,A,,,Graben,"),
                         venue_id="0" * 8 + "-0000-7000-8000-" + "0" * 12, name="Studio")
    assert [v.name for v in plan.variants] == ["Graben", "Bühne"]
    assert plan.sections[0].rows[0].seats[1].wheelchair is True
    assert plan.variants[1].remove[0].seats == ["1"]


@pytest.mark.parametrize("text,message", [
    ("section,row,seat,x,y\nSaal,1,1,1,1\n", "lacks column"),
    ("section,row,seat,x,y,zone,colour\nSaal,1,1,1,1,A,red\n", "unknown column"),
    (csv_plan("Saal,1,1,one,1,A,,,,"), "line 2: x must be a number"),
    (csv_plan("Saal,1,1,1,1,A,maybe,,,"), "line 2: wheelchair must be yes/no"),
    (csv_plan("Saal,1,1,1,1,A,,,,", "Saal,1"), "line 3: wrong number of columns"),
    (csv_plan("Saal,1,1,nan,1,A,,,,"), "finite"),
])
def test_bad_csv_lines_are_named(text, message):
    with pytest.raises(ValidationError, match=message):
        plan_from_csv(text, venue_id="x", name="Studio")


def seat(label, x, y, zone="1"):
    return {"label": label, "x": x, "y": y, "zone": zone}


async def test_an_overlapping_import_is_refused_and_writes_nothing(api):
    venue = (await call(api, "GET", "/venues?q=Studio", status=200))["items"][0]["id"]
    before = table_counts(api.hub.db)
    body = {"venue_id": venue, "name": "Kaputt", "sections": [{"name": "Saal", "rows": [
        {"label": "1", "seats": [seat("1", 1, 1), seat("2", 1.5, 1)]}]}]}
    err = await problem(api, "POST", "/seating-plans", body, status=422, slug="validation-failed")
    assert "overlap" in err["detail"]
    body["sections"][0]["rows"][0]["seats"] = [seat("1", 1, 1), seat("1", 3, 1)]
    err = await problem(api, "POST", "/seating-plans", body, status=422, slug="validation-failed")
    assert "duplicate seat Saal row 1 seat 1" in err["detail"]
    body["sections"][0]["rows"][0]["seats"] = [seat("1", 1, 1, zone="Z")]
    err = await problem(api, "POST", "/seating-plans", body, status=422, slug="validation-failed")
    assert "unknown price zone 'Z'" in err["detail"]
    assert table_counts(api.hub.db) == before


async def test_a_variant_whose_added_row_lands_on_existing_seats_is_refused(api):
    plan_id = api.hub.ids["plans"]["Großes Haus"]
    body = {"name": "Zu eng", "add": [{"name": "Parkett", "rows": [{"label": "Z", "seats": [seat("1", 6.2, 3)]}]}]}
    err = await problem(api, "POST", f"/seating-plans/{plan_id}/variants", body, status=422,
                        slug="validation-failed")
    assert "overlap" in err["detail"]
    body = {"name": "Ohne Reihe 99", "remove": [{"section": "Parkett", "row": "99"}]}
    err = await problem(api, "POST", f"/seating-plans/{plan_id}/variants", body, status=422,
                        slug="validation-failed")
    assert "does not have" in err["detail"]


async def test_a_variant_is_added_renamed_and_deactivated(api):
    plan_id = api.hub.ids["plans"]["Großes Haus"]
    made = await call(api, "POST", f"/seating-plans/{plan_id}/variants",
                      {"name": "Ohne 2. Rang", "remove": [{"section": "2. Rang", "row": str(r)} for r in range(1, 9)]},
                      status=201)
    assert made["seat_count"] == 640
    renamed = await call(api, "PATCH", f"/seating-plans/{plan_id}/variants/{made['id']}",
                         {"name": "Konzert ohne 2. Rang", "active": False}, status=200)
    assert renamed["name"] == "Konzert ohne 2. Rang" and renamed["active"] is False
    base = (await call(api, "GET", f"/seating-plans/{plan_id}/variants", status=200))[0]
    await problem(api, "PATCH", f"/seating-plans/{plan_id}/variants/{base['id']}", {"active": False},
                  status=422, slug="validation-failed")
    await problem(api, "POST", f"/seating-plans/{plan_id}/variants", {"name": "Bühnenerweiterung"},
                  status=409, slug="conflict")


async def test_csv_import_over_http(api):
    venue = (await call(api, "GET", "/venues?q=Studio", status=200))["items"][0]["id"]
    text = csv_plan("Saal,1,1,1,1,1,,,,", "Saal,1,2,2,1,2,,yes,,")
    resp = await api.post(f"/api/v1/seating-plans/import-csv?venue_id={venue}&name=Foyer", data=text.encode(),
                          headers={**api.hub.headers(), "Content-Type": "text/csv"})
    plan = await resp.json()
    assert resp.status == 201, plan
    seats = await call(api, "GET", f"/seating-plans/{plan['id']}/seats", status=200)
    assert [(s["label"], s["zone"], s["companion"]) for s in seats["items"]] == [("1", "1", False), ("2", "2", True)]
    await problem(api, "POST", f"/seating-plans/import-csv?venue_id={venue}&name=Foyer", {"x": 1},
                  status=415, slug="unsupported-media-type")


async def test_a_seat_is_changed_unless_it_would_overlap(api):
    plan_id = api.hub.ids["plans"]["Studio"]
    seats = (await call(api, "GET", f"/seating-plans/{plan_id}/seats", status=200))["items"]
    first, second = seats[0], seats[1]
    changed = await call(api, "PATCH", f"/seating-plans/{plan_id}/seats/{first['id']}",
                         {"zone": "2", "wheelchair": True}, status=200)
    assert changed["zone"] == "2" and changed["wheelchair"] is True
    err = await problem(api, "PATCH", f"/seating-plans/{plan_id}/seats/{first['id']}",
                        {"x": second["x"], "y": second["y"]}, status=422, slug="validation-failed")
    assert "overlap" in err["detail"]
    after = (await call(api, "GET", f"/seating-plans/{plan_id}/seats", status=200))["items"][0]
    assert (after["x"], after["y"]) == (first["x"], first["y"])
    gone = await call(api, "PATCH", f"/seating-plans/{plan_id}/seats/{first['id']}", {"active": False}, status=200)
    assert gone["active"] is False
    assert len((await call(api, "GET", f"/seating-plans/{plan_id}/seats", status=200))["items"]) == 198


async def test_a_seat_cannot_move_to_a_zone_its_performances_do_not_price(api):
    """The studio's performances and the choice subscription price zones 1 and 2 only."""
    plan_id = api.hub.ids["plans"]["Studio"]
    first = (await call(api, "GET", f"/seating-plans/{plan_id}/seats", status=200))["items"][0]
    err = await problem(api, "PATCH", f"/seating-plans/{plan_id}/seats/{first['id']}", {"zone": "4"},
                        status=422, slug="validation-failed")
    assert "price zone(s) 4 without a price" in err["detail"]
    again = (await call(api, "GET", f"/seating-plans/{plan_id}/seats", status=200))["items"][0]
    assert again["zone"] == first["zone"]


def test_csv_with_old_mac_line_ends_is_read():
    plan = plan_from_csv("section,row,seat,x,y,zone\rSaal,1,1,1,1,A\rSaal,1,2,2,1,A\r",
                         venue_id="0" * 8 + "-0000-7000-8000-" + "0" * 12, name="S")
    assert [s.label for s in plan.sections[0].rows[0].seats] == ["1", "2"]


def test_a_csv_field_too_long_to_read_is_a_clear_error():
    with pytest.raises(ValidationError, match="CSV cannot be read: field larger"):
        plan_from_csv("section,row,seat,x,y,zone\nSaal,1,1,1,1," + "x" * 200_000 + "\n", venue_id="v", name="S")
