"""The DATEV export (accounting export): a DATEV-Format Buchungsstapel (EXTF) of the paid
payments of a date range, byte for byte as the golden file made from the format description
(tests/golden/datev_buchungsstapel.csv: header line of 31 fields, 125 column names,
Windows-1252, CRLF, decimal comma, S/H flag, Belegdatum DDMM, order number in Belegfeld 1).

Also: umlauts in the Buchungstext are Windows-1252 bytes and letters it lacks are replaced,
the sums balance to the cent per export (hypothesis), hub.toml `[datev]` is checked strictly,
and the API and the CLI refuse hostile input with one clear error.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.base.errors import Conflict, ValidationError
from core.payments import datev, invoices
from hub.app import make_app
from tests.helpers import write_hub_toml
from tests.money_orders import customer, invoice, order

GOLDEN = Path(__file__).parent / "golden" / "datev_buchungsstapel.csv"
ROOT = Path(__file__).resolve().parents[1]
CREATED = dt.datetime(2026, 4, 2, 8, 15, 30, 123000, tzinfo=dt.UTC)  # 10:15:30.123 in Berlin
MARCH = (dt.date(2026, 3, 1), dt.date(2026, 3, 31))
CONFIG = {"consultant_number": 29098, "client_number": 55003, "label": "Tessera März", "initials": "ts"}
HUB_TOML = '[datev]\nconsultant_number = 29098\nclient_number = 55003\nlabel = "Tessera März"\ninitials = "ts"\n'


def _config(**changes) -> datev.DatevSettings:
    return datev.settings_from_dict({**CONFIG, **changes}, "hub.toml")


def march_orders(db) -> None:
    """The orders of the golden file: a transfer, a mixed-VAT cash sale, a card refund, a voucher
    for an exempt line, a name Windows-1252 cannot hold, and rows that are not booked."""
    anna = customer(db, "Anna", "Müller", "K-1")
    lukasz = customer(db, "Łukasz", 'Wójcik "Luk"', "K-2")
    order(db, "H-2026-000001", [(5000, "7")], [("transfer", 5000, "paid", "2026-03-02T09:00:00Z")],
          customer_id=anna)
    order(db, "H-2026-000002", [(1000, "19"), (2000, "7"), (1500, None)],
          [("cash", 4500, "paid", "2026-03-03T11:00:00Z")])
    order(db, "H-2026-000003", [(2000, "7")], [("card", 2000, "paid", "2026-03-01T08:00:00Z"),
                                              ("card", -2000, "paid", "2026-03-04T16:00:00Z")], customer_id=lukasz)
    order(db, "H-2026-000004", [(3000, "exempt")], [("voucher", 3000, "paid", "2026-03-10T18:00:00Z")])
    order(db, "H-2026-000005", [(999, "19")], [("cash", 333, "paid", "2026-03-11T12:00:00Z"),
                                               ("card", 666, "paid", "2026-03-11T12:00:00Z")])
    # not booked: still owed, failed, past midnight of 31 March at the venues, before March
    order(db, "H-2026-000006", [(4000, "7")], [("transfer", 4000, "pending", "2026-03-05T10:00:00Z"),
                                               ("sepa", 4000, "failed", "2026-03-06T10:00:00Z")])
    order(db, "H-2026-000007", [(100, "7")], [("cash", 100, "paid", "2026-03-31T22:30:00Z")])
    order(db, "H-2026-000008", [(100, "7")], [("cash", 100, "paid", "2026-02-28T22:59:59Z")])


def test_the_export_is_byte_for_byte_the_golden_file(empty_hub):
    march_orders(empty_hub.db)
    body = datev.export(empty_hub.db, _config(), *MARCH, CREATED, exported_by="office")
    assert body == GOLDEN.read_bytes()


def test_the_golden_file_has_the_documented_shape():
    """Read the golden file back as the format description says it is made."""
    raw = GOLDEN.read_bytes()
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    lines = raw.decode("cp1252").split("\r\n")[:-1]
    header = lines[0].split(";")
    assert len(header) == 31
    assert header[:6] == ['"EXTF"', "700", "21", '"Buchungsstapel"', "13", "20260402101530123"]
    assert header[10:16] == ["29098", "55003", "20260101", "4", "20260301", "20260331"]
    assert header[16:18] == ['"Tessera März"', '"TS"'] and header[21] == '"EUR"' and header[26] == '"03"'
    assert lines[1].split(";")[:14] == list(datev.COLUMNS[:14]) and len(lines[1].split(";")) == 125
    rows = [line.split(";") for line in lines[2:]]
    assert all(len(row) == 125 for row in rows)
    first = rows[0]  # the card payment of 1 March, on the Geldtransit account against 7 % revenue
    assert first[:3] == ["20,00", '"S"', '"EUR"'] and first[6:11] == ["1360", "8300", "", "0103", '"H-2026-000003"']
    refund = next(r for r in rows if r[1] == '"H"')
    assert refund[0] == "20,00" and refund[9] == "0403"


def test_umlauts_are_windows_1252_and_missing_letters_fall_back():
    raw = GOLDEN.read_bytes()
    assert "Überweisung H-2026-000001 Anna Müller".encode("cp1252") in raw
    assert b"\xdcberweisung" in raw and "Müller".encode() not in raw  # cp1252, not UTF-8
    assert 'Lukasz Wójcik ""Luk""'.encode("cp1252") in raw  # Ł is not in cp1252; a quote is doubled
    assert datev.cp1252_text("Zoë ☃ Straße\nzwei", 60) == "Zoë ? Straße zwei"
    assert len(datev.cp1252_text("x" * 100, datev.TEXT_MAX)) == 60


def _rows(body: bytes) -> list[list[str]]:
    """The booking lines of a batch, split into their fields."""
    return [line.split(";") for line in body.decode("cp1252").split("\r\n")[2:-1]]


def _post(rows: list[list[str]]) -> tuple[int, int, dict[str, int]]:
    """Debit and credit totals of the rows (each posts on Konto at its flag and on Gegenkonto at
    the other), and the net of each account (debit positive)."""
    debit = credit = 0
    net: dict[str, int] = {}
    for row in rows:
        euros, cents = row[0].split(",")
        amount = int(euros) * 100 + int(cents)
        sign = 1 if row[1] == '"S"' else -1
        net[row[6]] = net.get(row[6], 0) + sign * amount
        net[row[7]] = net.get(row[7], 0) - sign * amount
        debit += amount
        credit += amount
    return debit, credit, net


lines_strategy = st.lists(st.tuples(st.integers(0, 200_000), st.sampled_from(["19", "7", "exempt"])),
                          min_size=1, max_size=6)
payments_strategy = st.lists(st.tuples(st.sampled_from(["cash", "card", "transfer", "sepa", "online", "voucher"]),
                                       st.integers(-200_000, 200_000)), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(lines=lines_strategy, paid=payments_strategy)
def test_every_export_balances_to_the_cent(lines, paid):
    config = _config()
    bookings = []
    for method, amount in paid:
        row = {"method": method, "amount_cents": amount, "created_at": "2026-03-15T10:00:00Z"}
        parts = datev.payment_bookings(row, "H-2026-000001", [{"price_cents": p, "vat_code": v} for p, v in lines],
                                       "Anna Müller", config)
        assert sum(b.amount_cents for b in parts) == abs(amount)  # the VAT split adds up to the payment
        assert all(b.amount_cents > 0 for b in parts)
        bookings.extend(parts)
    body = datev.render(config, *MARCH, bookings, CREATED)
    rows = [line.split(";") for line in body.decode("cp1252").split("\r\n")[2:-1]]
    debit, credit, net = _post(rows)
    assert debit == credit and sum(net.values()) == 0
    money = {a for a in config.money.values()}
    assert sum(v for a, v in net.items() if a in money) == sum(a for _, a in paid)


@given(amount=st.integers(0, 10**9), weights=st.dictionaries(st.sampled_from(["19", "7", "exempt"]),
                                                             st.integers(0, 10**6), min_size=1))
def test_allocate_splits_to_the_cent_in_proportion(amount, weights):
    shares = datev.allocate(amount, weights)
    assert sum(shares.values()) == amount
    total = sum(weights.values())
    if total:
        for key, share in shares.items():
            assert abs(share * total - amount * weights[key]) <= total  # within a cent of its share


@pytest.mark.parametrize("table, message", [
    ({"consultant_number": 12}, "consultant_number must be a whole number from 1001"),
    ({"client_number": "55003"}, "client_number must be a whole number"),
    ({"account_length": 9}, "account_length must be a whole number from 4 to 8"),
    ({"chart": "05"}, 'chart must be "03" or "04"'),
    ({"label": "x" * 31}, "label must be 1 to 30"),
    ({"initials": "ABC"}, "initials must be two letters"),
    ({"ticket_vat": "7"}, r"datev.ticket_vat is no longer read: .*organizer's invoicing setting ticket_vat_code"),
    ({"revenue": {"16": "8400"}}, "unknown key datev.revenue.16"),
    ({"money": {"cash": 1000}}, "datev.money.cash must be an account of 4 digits"),
    ({"money": {"cash": "10000"}}, "datev.money.cash must be an account of 4 digits"),
    ({"account_length": 5}, "datev.revenue.19 must be an account of 5 digits"),
    ({"accounts": {}}, "unknown key datev.accounts"),
])
def test_datev_settings_are_checked_and_name_the_key(table, message):
    with pytest.raises(datev.DatevConfigError, match="hub.toml: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        datev.settings_from_dict(table, "hub.toml")


def test_without_the_advisors_numbers_nothing_is_exported_and_ranges_stay_in_one_fiscal_year(empty_hub):
    with pytest.raises(Conflict) as caught:
        datev.export(empty_hub.db, datev.settings_from_dict(None, "hub.toml"), *MARCH, CREATED)
    assert "Mandantennummer" in caught.value.extra["detail_de"]
    with pytest.raises(ValidationError):
        datev.export(empty_hub.db, _config(), dt.date(2026, 3, 2), dt.date(2026, 3, 1), CREATED)
    with pytest.raises(ValidationError) as caught:
        datev.export(empty_hub.db, _config(), dt.date(2025, 12, 1), dt.date(2026, 1, 31), CREATED)
    assert "Wirtschaftsjahr" in caught.value.extra["detail_de"]
    july = _config(fiscal_year_start=7)  # a fiscal year from July: December to January is one year
    body = datev.export(empty_hub.db, july, dt.date(2025, 12, 1), dt.date(2026, 1, 31), CREATED)
    assert body.split(b";")[12] == b"20250701"


@pytest.fixture
async def datev_api(aiohttp_client, empty_hub):
    write_hub_toml(empty_hub.dir, HUB_TOML)
    march_orders(empty_hub.db)
    client = await aiohttp_client(make_app(empty_hub.db))
    client.hub = empty_hub
    return client


async def test_the_api_downloads_the_batch_as_a_windows_1252_file(datev_api):
    response = await datev_api.get("/api/v1/exports/datev?from=2026-03-01&to=2026-03-31",
                                   headers=datev_api.hub.headers())
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=windows-1252"
    assert 'filename="EXTF_Buchungsstapel_20260301_20260331.csv"' in response.headers["Content-Disposition"]
    body = await response.read()
    assert body.split(b"\r\n", 1)[1] == GOLDEN.read_bytes().split(b"\r\n", 1)[1]  # all but the creation time


@pytest.mark.parametrize("query, status", [
    ("from=2026-03-01", 400),
    ("from=2026-13-01&to=2026-03-31", 400),
    ("from=20260301&to=2026-03-31", 400),
    ("from=2026-03-01'--&to=2026-03-31", 400),
    ("from=２０２６-03-01&to=2026-03-31", 400),
    ("from=2026-03-31&to=2026-03-01", 422),
    ("from=2025-12-01&to=2026-01-31", 422),
    ("from=0001-01-01&to=0001-01-31", 422),
    ("from=9999-12-01&to=9999-12-31", 422),
    ("from=2026-03-01&to=2026-03-31&format=xml", 400),
])
async def test_hostile_export_queries_are_clear_errors(datev_api, query, status):
    response = await datev_api.get(f"/api/v1/exports/datev?{query}", headers=datev_api.hub.headers())
    assert response.status == status
    assert (await response.json())["detail"]


async def test_an_unconfigured_hub_answers_409(aiohttp_client, empty_hub):
    client = await aiohttp_client(make_app(empty_hub.db))
    response = await client.get("/api/v1/exports/datev?from=2026-03-01&to=2026-03-31", headers=empty_hub.headers())
    assert response.status == 409 and "consultant_number" in (await response.json())["detail"]


def test_the_cli_writes_the_batch_and_refuses_bad_input_in_one_line(empty_hub, tmp_path):
    write_hub_toml(empty_hub.dir, HUB_TOML)
    march_orders(empty_hub.db)
    out = tmp_path / "march.csv"
    tessera = [sys.executable, "-m", "cli.main", "hub", "datev", "export", "--data", str(empty_hub.dir)]
    done = subprocess.run([*tessera, "--from", "2026-03-01", "--to", "2026-03-31", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "9 bookings" in done.stdout
    assert out.read_bytes().split(b"\r\n", 1)[1] == GOLDEN.read_bytes().split(b"\r\n", 1)[1]
    bad = subprocess.run([*tessera, "--from", "2026-03-31", "--to", "2026-03-01", "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "before it starts" in bad.stderr


def test_an_invoiced_order_books_on_its_invoice_number_and_the_vat_the_invoice_stated(empty_hub):
    """The ticket line has no VAT code in the ledger; its invoice said exempt (§4 Nr. 20a), so the
    batch books it on the exempt revenue account, with the invoice number in Belegfeld 1."""
    db = empty_hub.db
    anna = customer(db, "Anna", "Müller", "K-1")
    owed = order(db, "H-2026-000001", [(4000, None), (1000, "19")],
                 [("transfer", 5000, "paid", "2026-03-12T09:00:00Z")], customer_id=anna)
    first = invoice(db, owed, "RE-2026-000001", due_on="2026-03-20", kassenzeichen="2026-000001",
                    vat_codes={1: "exempt", 2: "19"})
    rows = _rows(datev.export(db, _config(), *MARCH, CREATED))
    assert [(r[0], r[6], r[7], r[10]) for r in rows] == [("40,00", "1200", "8100", '"RE-2026-000001"'),
                                                        ("10,00", "1200", "8400", '"RE-2026-000001"')]
    invoice(db, owed, "RE-2026-000002", due_on=None, kassenzeichen="2026-000002", vat_codes={}, cancels=first)
    rows = _rows(datev.export(db, _config(), *MARCH, CREATED))
    assert [(r[0], r[7], r[10]) for r in rows] == [("40,00", "8100", '"H-2026-000001"'),  # no organizer: exempt
                                                  ("10,00", "8400", '"H-2026-000001"')]


@pytest.mark.parametrize("code, account", [("7", "8300"), ("exempt", "8100"), ("19", "8400")])
def test_an_uninvoiced_seat_ticket_books_at_its_organizers_ticket_vat_code(sample_hub, code, account):
    """One rule for seat tickets: the organizer's invoicing setting. An invoice of the line would
    state the same code, so the invoice and the books cannot disagree."""
    db = sample_hub.db
    theatre = sample_hub.ids["theatre_organizer"]
    invoices.set_settings(db, theatre, invoices.InvoicingIn(ticket_vat_code=code), CREATED)
    owed = order(db, "H-2026-000101", [(2500, None)], [("cash", 2500, "paid", "2026-03-12T09:00:00Z")])
    db.execute("UPDATE order_lines SET product_id = ? WHERE order_id = ?", (sample_hub.ids["performances"][0], owed))
    rows = [r for r in _rows(datev.export(db, _config(), *MARCH, CREATED)) if r[10] == '"H-2026-000101"']
    assert [(r[0], r[6], r[7]) for r in rows] == [("25,00", "1000", account)]
