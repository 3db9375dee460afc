"""Pure catalog rules: validity windows of annual tickets (A1), sale phases (S3), money."""

import datetime as dt

import pytest

from core.base.money import format_eur, percent_off
from core.catalog.annual import add_months, validity_window
from core.catalog.pricing import ticket_price
from core.catalog.subscriptions import sale_phase

D = dt.date


@pytest.mark.parametrize("start,months,end", [
    (D(2026, 1, 31), 1, D(2026, 2, 28)), (D(2028, 1, 31), 1, D(2028, 2, 29)), (D(2026, 11, 22), 12, D(2027, 11, 22)),
    (D(2026, 12, 15), 1, D(2027, 1, 15)), (D(2026, 3, 31), 11, D(2027, 2, 28))])
def test_adding_months_clamps_to_the_end_of_the_month(start, months, end):
    assert add_months(start, months) == end


def test_fixed_validity_ignores_the_sale_date():
    product = {"validity_mode": "fixed", "valid_from": "2027-01-01", "valid_until": "2027-12-31"}
    assert validity_window(product, D(2026, 11, 22), None) == (D(2027, 1, 1), D(2027, 12, 31))


def test_twelve_months_from_purchase_end_the_day_before():
    product = {"validity_mode": "from_purchase", "months": 12}
    assert validity_window(product, D(2026, 11, 22), None) == (D(2026, 11, 22), D(2027, 11, 21))


def test_from_first_entry_has_no_window_until_the_first_entry():
    product = {"validity_mode": "from_first_entry", "months": 12}
    assert validity_window(product, D(2026, 11, 22), None) is None
    assert validity_window(product, D(2026, 11, 22), D(2027, 3, 5)) == (D(2027, 3, 5), D(2028, 3, 4))


WINDOWS = [
    {"channel": "online", "phase": "renewal", "starts_at": "2026-03-01T08:00:00Z", "ends_at": "2026-05-15T07:00:00Z"},
    {"channel": "online", "phase": "general", "starts_at": "2026-05-15T07:00:00Z", "ends_at": "2027-06-30T21:59:00Z"},
    {"channel": "agency", "phase": "general", "starts_at": "2026-05-15T07:00:00Z", "ends_at": "2027-06-30T21:59:00Z"},
]


@pytest.mark.parametrize("channel,at,phase", [
    ("online", "2026-02-28T12:00:00Z", None), ("online", "2026-03-01T08:00:00Z", "renewal"),
    ("online", "2026-05-15T06:59:59Z", "renewal"), ("online", "2026-05-15T07:00:00Z", "general"),
    ("agency", "2026-04-01T12:00:00Z", None), ("agency", "2026-06-01T12:00:00Z", "general"),
    ("phone", "2026-06-01T12:00:00Z", None), ("online", "2027-06-30T21:59:00Z", None)])
def test_the_sale_phase_of_a_channel_at_a_time(channel, at, phase):
    assert sale_phase(WINDOWS, channel, at) == phase


def test_money_is_formatted_the_german_way():
    assert format_eur(123456) == "1.234,56 €"
    assert format_eur(5) == "0,05 €"
    assert format_eur(-1999) == "-19,99 €"
    assert percent_off(1000, 0) == 1000 and percent_off(1000, 100) == 0
    with pytest.raises(ValueError):
        percent_off(1000, 101)


def test_single_ticket_price_of_a_seat(sample_hub):
    perf = sample_hub.ids["rings"]["A"][0]
    zones = sample_hub.ids["zones"]
    assert ticket_price(sample_hub.db, perf, zones["1"]) == 5800
    assert ticket_price(sample_hub.db, perf, zones["4"]) == 2200
