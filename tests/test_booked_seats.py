"""`contingents.booked_seats`: many (performance, seat) pairs in one statement, the pairs as a
placeholder table (`core.base.sql.keyed_rows`) and the offered-seat rule checked in Python, say
for every pair what `some_seats` (one performance, the rule in SQL) and `pool_of` say: seats of
another plan, inactive seats, seats the variant removes, unknown seats and performances, a
pair twice, a seat in another pool. On both backends; `listed`/`keyed_rows` pad to a power of
two without changing an answer."""

from __future__ import annotations

import pytest

from core.base import sql
from core.sales import contingents

pytestmark = pytest.mark.both_backends


def expected(db, bookings):
    out = {}
    for perf in dict.fromkeys(p for p, _ in bookings if p != "nope"):
        offered = contingents.some_seats(db, perf, [s for p, s in bookings if p == perf])
        for seat_id, row in offered.items():
            out[(perf, seat_id)] = {"performance_id": perf, "id": seat_id, "section": row["section"],
                                    "row_label": row["row_label"], "label": row["label"],
                                    "zone_id": row["zone_id"], "pool": contingents.pool_of(db, perf, seat_id)}
    return out


def test_booked_seats_say_what_some_seats_and_pools_say(sample_hub):
    db = sample_hub.db
    cut = db.execute("SELECT r.variant_id, r.seat_id, v.plan_id FROM variant_removed_seats r "
                     "JOIN plan_variants v ON v.id = r.variant_id ORDER BY r.seat_id").fetchone()
    assert cut is not None  # the sample has a variant without some seats: one date plays it
    db.execute("UPDATE performances SET variant_id = ? WHERE id = (SELECT min(p.id) FROM performances p "
               "JOIN plan_variants v ON v.id = p.variant_id WHERE v.plan_id = ?)", (cut["variant_id"], cut["plan_id"]))
    perfs = db.execute("SELECT p.id, p.variant_id, v.plan_id FROM performances p "
                       "JOIN plan_variants v ON v.id = p.variant_id ORDER BY p.id").fetchall()
    trimmed = next(p for p in perfs if p["variant_id"] == cut["variant_id"])
    plain = next(p for p in perfs if p["plan_id"] == trimmed["plan_id"] and p["variant_id"] != cut["variant_id"])
    other = next(p for p in perfs if p["plan_id"] != trimmed["plan_id"])
    own = [r["id"] for r in db.execute("SELECT id FROM seats WHERE plan_id = ? AND variant_id IS NULL AND id <> ? "
                                       "ORDER BY id LIMIT 4", (trimmed["plan_id"], cut["seat_id"]))]
    foreign = db.execute("SELECT id FROM seats WHERE plan_id = ? ORDER BY id LIMIT 1",
                         (other["plan_id"],)).fetchone()["id"]
    db.execute("UPDATE seats SET active = 0 WHERE id = ?", (own[0],))
    contingents.set_pool(db, plain["id"], own[1], contingents.BLOCKED)
    bookings = [(perf["id"], seat) for perf in (trimmed, plain, other)
                for seat in (*own, cut["seat_id"], foreign, "nope")]
    bookings += [("nope", own[2]), (plain["id"], own[2])]  # an unknown performance; a pair twice
    got = contingents.booked_seats(db, bookings)
    assert got == expected(db, bookings)
    assert (plain["id"], own[1]) in got and got[(plain["id"], own[1])]["pool"] == contingents.BLOCKED
    assert (plain["id"], own[0]) not in got  # inactive
    assert (trimmed["id"], cut["seat_id"]) not in got and (plain["id"], cut["seat_id"]) in got
    assert (trimmed["id"], foreign) not in got and (other["id"], foreign) in got
    for n in (1, 2, 3, 5):  # padded to 1, 2, 4, 8 rows
        assert contingents.booked_seats(db, bookings[:n]) == expected(db, bookings[:n])
    assert contingents.booked_seats(db, []) == {}


def test_listed_and_keyed_rows_pad_to_a_power_of_two(sample_hub):
    db = sample_hub.db
    ids = [r["id"] for r in db.execute("SELECT id FROM performances ORDER BY id LIMIT 5")]
    for n in range(1, 6):
        marks, params = sql.listed(ids[:n])
        assert len(params) == {1: 1, 2: 2, 3: 4, 4: 4, 5: 8}[n] and params[n:] == [ids[n - 1]] * (len(params) - n)
        found = db.execute(f"SELECT id FROM performances WHERE id IN ({marks}) ORDER BY id", params).fetchall()
        assert [r["id"] for r in found] == ids[:n]
        table, params = sql.keyed_rows([(i, f"x{k}") for k, i in enumerate(ids[:n])], "performance_id", "tag")
        rows = db.execute(f"SELECT k.performance_id, k.tag, p.title FROM {table} k "
                          "JOIN performances p ON p.id = k.performance_id", params).fetchall()
        assert {(r["performance_id"], r["tag"]) for r in rows} == {(i, f"x{k}") for k, i in enumerate(ids[:n])}
    with pytest.raises(ValueError):
        sql.listed([])
    with pytest.raises(ValueError):
        sql.keyed_rows([("a", "b", "c")], "one", "two")
