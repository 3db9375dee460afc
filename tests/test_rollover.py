"""Season rollover (S15) of the sample theatre into 2027/28, checked line by line: the scene
(tests/rollover_scene.py) has a subscription of every fate; the run plans, holds and lists them,
a dry run writes nothing, a second run doubles nothing, and the confirmation makes orders,
invoices, a RCUR debit and print jobs. Core on real SQLite files."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from core.base.errors import Conflict
from core.base.node import this_node
from core.cards import cards
from core.payments import sepa
from core.subscriptions import holds, rollover_run
from core.subscriptions.rollover_map import MappingIn, ProductPairIn
from hub.app import DB_NAME
from hub.services import rollover_confirm
from tests.helpers import table_counts
from tests.rollover_scene import NOW, scene_hub
from tests.test_subscription_sale import house, product, seat


@pytest.fixture
def sample_hub(request, tmp_path, backend):
    """The sample hub with the rollover scene, built once per process and copied (tests/rollover_scene.py)."""
    return scene_hub(request, tmp_path, backend)


@pytest.fixture
def scene(sample_hub):
    return sample_hub.scene


def no_vouchers(scene) -> MappingIn:
    """The office's explicit mapping: the voucher subscription has no successor this time."""
    return MappingIn(products=[ProductPairIn(from_product_id=product(scene.hub, "Wahlgutschein 6er"))])


def run(scene, **kw) -> dict:
    return rollover_run.run(scene.hub.db, scene.hub.ids["season"], scene.new["season"], NOW,
                            mapping=no_vouchers(scene), **kw)


def items_by_role(scene, items: list[dict]) -> dict[str, dict]:
    by_sub = {i["subscription_id"]: i for i in items}
    return {role: by_sub[sub["id"]] for role, sub in scene.subs.items()}


def new_perfs(scene, ring: str) -> list[str]:
    return [scene.new["performances"][p] for p in scene.hub.ids["rings"][ring]]


def seat_of(db, seat_id: str) -> dict:
    return db.execute("SELECT s.*, c.name AS section FROM seats s JOIN plan_sections c ON c.id = s.section_id "
                      "WHERE s.id = ?", (seat_id,)).fetchone()


def test_the_sample_theatre_rolls_over_line_by_line(scene):
    db, hub = scene.hub.db, scene.hub
    out = run(scene)
    items = rollover_run.items_of(db, out["run"]["id"])
    old_season = db.execute("SELECT count(*) AS n FROM subscriptions s JOIN subscription_products p "
                            "ON p.id = s.product_id WHERE p.season_id = ?", (hub.ids["season"],)).fetchone()["n"]
    assert len(items) == old_season
    got = items_by_role(scene, items)
    assert {r: (i["outcome"], i["reason"]) for r, i in got.items()} == {
        "kept": ("kept", None), "cancelled": ("left_out", "cancelled"), "tier_renamed": ("listed", "tier_missing"),
        "moved": ("moved", None), "wheelchair": ("listed", "wheelchair_locked"), "paused": ("paused", None),
        "zone": ("listed", "zone_changed"), "choice": ("kept", None), "combi": ("kept", None),
        "party_1": ("kept", None), "party_2": ("kept", None), "voucher": ("listed", "product_missing")}
    assert out["counts"] == {"kept": 5, "moved": 1, "paused": 1, "listed": 4, "left_out": 1}
    assert {r: [x["number"] for x in v] for r, v in out["listed"].items()} == {
        "product_missing": [scene.subs["voucher"]["number"]], "tier_missing": [scene.subs["tier_renamed"]["number"]],
        "zone_changed": [scene.subs["zone"]["number"]], "wheelchair_locked": [scene.subs["wheelchair"]["number"]]}
    assert got["tier_renamed"]["detail"] == "Schüler/Studierende"
    assert got["wheelchair"]["detail"] == "Parkett 20/1" and got["zone"]["detail"] == "Parkett 9/1"

    kept_seat = seat(db, house(hub), "Parkett", "10", "5")["id"]  # the same seat at the same position, 8 times
    assert got["kept"]["seats"] == [[p, kept_seat] for p in new_perfs(scene, "A")]
    assert got["kept"]["to_product_id"] == scene.new["products"]["Abo-Ring A"]
    moved = dict(got["moved"]["seats"])  # Parkett 12/8 is gone at the first date (new variant): nearest in zone 2
    old = seat(db, house(hub), "Parkett", "12", "8")
    first, rest = new_perfs(scene, "C")[0], new_perfs(scene, "C")[1:]
    assert [moved[p] for p in rest] == [old["id"]] * 7
    replacement = seat_of(db, moved[first])
    assert replacement["zone_id"] == old["zone_id"] and replacement["id"] != old["id"]
    assert (replacement["section"], replacement["row_label"]) == ("Parkett", "12")  # right beside it
    assert abs(float(replacement["label"]) - 8) == 1
    choice = [seat_of(db, s) for _, s in got["choice"]["seats"]]  # new Studio plan: found by section/row/number
    assert {(s["plan_id"], s["section"], s["row_label"], s["label"]) for s in choice} == {
        (scene.new["studio_plan"], "Saal", "3", "3")}
    new_choice = [scene.new["performances"][p] for p in _positions(db, product(hub, "Wahl-Abo Studio 5 aus 8"))]
    assert [p for p, _ in got["choice"]["seats"]] == new_choice[1:6]
    combi = [seat_of(db, s) for _, s in got["combi"]["seats"]]
    assert [(s["section"], s["row_label"], s["label"]) for s in combi] == [
        ("Parkett", "4", "4"), ("Parkett", "4", "4"), ("Saal", "2", "2")]
    assert [seat_of(db, s)["label"] for _, s in got["party_1"]["seats"][:1] + got["party_2"]["seats"][:1]] == [
        "9", "10"]
    assert got["paused"]["state"] == "held" and got["paused"]["seats"]  # a paused subscriber keeps the seat held

    holder = rollover_run.holder_of(out["run"]["id"])
    held = db.execute("SELECT performance_id, seat_id, expires_at FROM seat_holds WHERE holder = ?",
                      (holder,)).fetchall()
    assert sorted((h["performance_id"], h["seat_id"]) for h in held) == sorted(
        tuple(b) for i in items for b in i["seats"])
    assert {h["expires_at"] for h in held} == {out["run"]["renewal_until"]}
    with pytest.raises(Conflict, match="held by another buyer"):  # S3: nobody else takes them before the deadline
        holds.hold(db, "staff:somebody", [(first, moved[first])], now=NOW)


def _positions(db, product_id: str) -> list[str]:
    return [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position", (product_id,))]


def dump(scene) -> str:
    """The whole database as SQL text, read through a plain connection of its own."""
    plain = sqlite3.connect(scene.hub.dir / DB_NAME)
    try:
        return "\n".join(plain.iterdump())
    finally:
        plain.close()


def test_a_dry_run_shows_the_same_result_and_writes_nothing(scene):
    db = scene.hub.db
    before = dump(scene)
    dry = run(scene, dry_run=True)
    assert dump(scene) == before
    assert dry["dry_run"] and dry["run"] is None
    real = run(scene)
    stored = {i["subscription_id"]: (i["outcome"], i["reason"], i["seats"])
              for i in rollover_run.items_of(db, real["run"]["id"])}
    assert {i["subscription_id"]: (i["outcome"], i["reason"], i["seats"]) for i in dry["items"]} == stored
    assert dry["counts"] == real["counts"] and dry["listed"] == real["listed"]


def test_a_second_run_doubles_nothing_and_keeps_its_mapping(scene):
    db = scene.hub.db
    first = run(scene)
    counts = table_counts(db)
    again = rollover_run.run(db, scene.hub.ids["season"], scene.new["season"], NOW + dt.timedelta(hours=1))
    assert table_counts(db) == counts and again["counts"] == first["counts"]
    with pytest.raises(Conflict, match="another product mapping"):
        rollover_run.run(db, scene.hub.ids["season"], scene.new["season"], NOW,
                         mapping=MappingIn(products=[ProductPairIn(from_product_id=product(scene.hub, "Abo-Ring A"))]))


def confirm(scene, run_id: str, **kw) -> dict:
    db = scene.hub.db
    return rollover_confirm.confirm(db, this_node(db), cards.load_signer(db, scene.hub.dir), run_id, NOW, **kw)


def test_confirmation_makes_orders_invoices_a_rcur_debit_and_print_jobs(scene):
    db, hub = scene.hub.db, scene.hub
    planned = run(scene)
    run_id = planned["run"]["id"]
    jobs_before = db.execute("SELECT count(*) AS n FROM print_jobs").fetchone()["n"]
    done = confirm(scene, run_id)
    assert done["states"] == {"held": 1, "confirmed": 6, "open": 5, "failed": 0}  # the paused one stays held
    got = items_by_role(scene, rollover_run.items_of(db, run_id))
    for role in ("kept", "moved", "choice", "combi", "party_1", "party_2"):
        item, old = got[role], scene.subs[role]
        new = db.execute("SELECT * FROM subscriptions WHERE id = ?", (item["new_subscription_id"],)).fetchone()
        assert (new["customer_id"], new["product_id"], new["state"]) == (old["customer_id"], item["to_product_id"],
                                                                           "active")
        tickets = db.execute("SELECT performance_id, seat_id FROM tickets WHERE line_id = ? AND status = 'sold'",
                             (new["line_id"],)).fetchall()
        assert sorted([t["performance_id"], t["seat_id"]] for t in tickets) == sorted(item["seats"])
        invoice = db.execute("SELECT * FROM invoices WHERE id = ?", (item["invoice_id"],)).fetchone()
        assert invoice["order_id"] == item["order_id"] == new["order_id"]
    assert got["party_1"]["order_id"] == got["party_2"]["order_id"]  # a party stays one order, two lines
    assert db.execute("SELECT count(*) AS n FROM order_lines WHERE order_id = ?",
                      (got["party_1"]["order_id"],)).fetchone()["n"] == 2
    assert db.execute("SELECT count(*) AS n FROM seat_holds WHERE holder = ?",
                      (rollover_run.holder_of(run_id),)).fetchone()["n"] == len(got["paused"]["seats"])
    assert db.execute("SELECT count(*) AS n FROM print_jobs").fetchone()["n"] > jobs_before
    pays = {r["method"] for r in db.execute("SELECT method FROM payments WHERE order_id = ?",
                                            (got["moved"]["order_id"],))}
    assert pays == {"transfer"}
    debit = db.execute("SELECT * FROM sepa_debits WHERE id = ?", (got["kept"]["debit_id"],)).fetchone()
    assert debit["order_id"] == got["kept"]["order_id"] and debit["mandate_id"] == scene.subs["kept"]["mandate_id"]
    assert [i["debit_id"] for r, i in got.items() if i["debit_id"]] == [debit["id"]]
    due = dt.datetime.fromisoformat(debit["due_on"] + "T08:00+00:00")
    exported = sepa.export(db, hub.ids["theatre_organizer"], due)
    sent = db.execute("SELECT sequence, state FROM sepa_debits WHERE id = ?", (debit["id"],)).fetchone()
    assert (sent["sequence"], sent["state"]) == ("RCUR", "submitted")  # its FRST was collected last season
    assert b"<SeqTp>RCUR</SeqTp>" in sepa.run_file(db, exported["id"])
    counts = table_counts(db)
    again = confirm(scene, run_id)  # nothing twice
    assert table_counts(db) == counts and again["states"] == done["states"]
    rerun = run(scene)  # running it again afterwards plans nothing and keeps its state
    assert table_counts(db) == counts and rerun["run"]["state"] == done["run"]["state"] == "done"


def test_one_subscriber_is_confirmed_alone_and_an_expired_hold_fails_without_harm(scene):
    db = scene.hub.db
    planned = run(scene)
    run_id = planned["run"]["id"]
    party = db.execute("SELECT number FROM customers WHERE id = ?", (scene.subs["party_1"]["customer_id"],)).fetchone()
    one = confirm(scene, run_id, customer_numbers=[party["number"]])
    assert one["states"]["confirmed"] == 2 and one["run"]["state"] == "held"
    with pytest.raises(Exception, match="no customer"):
        confirm(scene, run_id, customer_numbers=["K-NOPE"])
    item = items_by_role(scene, rollover_run.items_of(db, run_id))["kept"]
    db.execute("UPDATE seat_holds SET expires_at = ? WHERE hold_id = ?", ("2027-01-01T00:00:00Z", item["hold_id"]))
    db.commit()
    done = confirm(scene, run_id)
    failed = items_by_role(scene, rollover_run.items_of(db, run_id))["kept"]
    assert failed["state"] == "failed" and "renewal deadline" in failed["error"]
    assert failed["new_subscription_id"] is None and done["states"]["failed"] == 1
    assert json.loads(json.dumps(done["counts"])) == planned["counts"]
