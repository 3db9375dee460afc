"""Realistic sample data, created through the hub API (HTTP or in-process).

- Museumsverbund Nordstadt e.V.: three museums and a special exhibition, four annual-ticket
  products covering every validity mode (A1).
- Theater Nordstadt gGmbH: Großes Haus (800 seats: stalls, circle, upper circle; four price
  zones; variants with the orchestra pit covered and with a stage extension) and Studio
  (199 seats); season 2026/27 with three 8-performance rings, a 5-of-8 choice
  subscription, a 6-voucher subscription and a combi ticket, each with discount tiers
  (students, disabled, complimentary) and sale windows (renewal before general sale).
- Customers with German names and structured addresses; `scale` multiplies them.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any, Protocol

from core.base.clock import LOCAL_TZ

BASE_CUSTOMERS = 250
BASE_PERFORMANCES = 32

FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannah", "Jonas", "Karin", "Lena",
         "Lukas", "Marie", "Niklas", "Olga", "Paul", "Rosa", "Sophie", "Tobias", "Ursula", "Valentin",
         "Wilhelm", "Yusuf", "Zeynep", "Jürgen", "Gisela", "Mehmet", "Ewa", "Sören", "Käthe"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
        "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
        "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Yilmaz", "Nowak",
        "Özdemir", "Kowalski", "Lehmann"]
STREETS = ["Hauptstraße", "Schillerstraße", "Goethestraße", "Bahnhofstraße", "Lindenallee", "Am Markt",
           "Gartenweg", "Kirchplatz", "Theaterstraße", "Museumsufer", "Rosenweg", "Uferstraße"]
TOWNS = [("28195", "Bremen"), ("20095", "Hamburg"), ("30159", "Hannover"), ("26122", "Oldenburg"),
         ("49074", "Osnabrück"), ("27568", "Bremerhaven"), ("21335", "Lüneburg")]
PLAYS = ["Die Zauberflöte", "Faust I", "Der Kirschgarten", "La Traviata", "Woyzeck", "Der Nussknacker",
         "Nathan der Weise", "Carmen"]
STUDIO_PLAYS = ["Die Verwandlung", "Kunst", "Der Gott des Gemetzels", "Heisenberg"]
OPERA = {"Die Zauberflöte", "La Traviata", "Der Nussknacker", "Carmen"}  # need the orchestra pit


class Client(Protocol):
    def call(self, method: str, path: str, body: Any = None) -> Any: ...

    def post_csv(self, path: str, query: dict, text: str) -> Any: ...


def address(street: str, postcode: str, town: str) -> dict:
    return {"street": street, "postcode": postcode, "town": town, "country": "DE"}


def main_house_plan(venue_id: str) -> dict:
    """800 seats: Parkett 20x20, 1. Rang 8x30, 2. Rang 8x20; zones 1-4."""
    def rows(count: int, seats: int, y0: float, x0: float, zone: Callable[[int], str], prefix: str = "") -> list:
        out = []
        for r in range(1, count + 1):
            out.append({"label": f"{prefix}{r}", "seats": [
                {"label": str(s), "x": x0 + s, "y": y0 + r, "zone": zone(r),
                 "wheelchair": prefix == "" and y0 == 2 and r == count and s <= 2,
                 "companion": prefix == "" and y0 == 2 and r == count and s in (3, 4)}
                for s in range(1, seats + 1)]})
        return out

    parkett = {"name": "Parkett", "rows": rows(20, 20, 2, 5, lambda r: "1" if r <= 8 else "2")}
    rang1 = {"name": "1. Rang", "rows": rows(8, 30, 25, 0, lambda r: "2" if r <= 3 else "3")}
    rang2 = {"name": "2. Rang", "rows": rows(8, 20, 35, 5, lambda r: "3" if r <= 4 else "4")}
    pit = {"name": "Parkett", "rows": [
        {"label": label, "seats": [{"label": str(s), "x": 6 + s, "y": y, "zone": "1"} for s in range(1, 17)]}
        for label, y in (("A", 1), ("B", 2))]}
    return {
        "venue_id": venue_id, "name": "Großes Haus", "base_variant": "Standard (Orchestergraben offen)",
        "sections": [parkett, rang1, rang2],
        "variants": [
            {"name": "Orchestergraben überbaut", "add": [pit]},
            {"name": "Bühnenerweiterung", "remove": [{"section": "Parkett", "row": "1"},
                                                     {"section": "Parkett", "row": "2"}]},
        ],
    }


def studio_plan_csv() -> str:
    """199 seats as CSV: 10 rows of 18 and a last row of 19 (two wheelchair places)."""
    lines = ["section,row,seat,x,y,zone,wheelchair,companion"]
    for r in range(1, 12):
        for s in range(1, (19 if r == 11 else 18) + 1):
            zone = "1" if r <= 5 else "2"
            wheel = "yes" if r == 11 and s in (1, 2) else ""
            lines.append(f"Saal,{r},{s},{s},{r},{zone},{wheel},")
    return "\n".join(lines) + "\n"


def _at(day: dt.date, hour: int, minute: int = 0) -> str:
    """*hour*:*minute* on the house clock (Europe/Berlin), summer or winter time."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_TZ).isoformat()


def build(client: Client, *, scale: int = 1, performances: int = BASE_PERFORMANCES,
          seed: int = 2026, progress: Callable[[str], None] = lambda _: None) -> dict:
    """Create the whole sample catalog; returns the ids a demo or test needs."""
    ids: dict[str, Any] = {}
    museum(client, ids)
    progress("museums and annual tickets created")
    theatre(client, ids, performances)
    progress(f"theatre created: {len(ids['performances'])} performances, {len(ids['subscriptions'])} subscriptions")
    customers(client, ids, BASE_CUSTOMERS * scale, seed, progress)
    return ids


def museum(client: Client, ids: dict) -> None:
    org = client.call("POST", "/organizers", {
        "name": "Museumsverbund Nordstadt e.V.", "address": address("Museumsufer 1", "28195", "Bremen"),
        "tax_number": "60/145/12345", "vat_id": "DE123456789", "sepa_creditor_id": "DE98ZZZ09999999999"})
    ids["museum_organizer"] = org["id"]
    venues = {}
    for name, kind, street in (("Stadtmuseum", "museum", "Am Markt 3"), ("Kunsthalle", "museum", "Am Wall 207"),
                               ("Naturkundemuseum", "museum", "Bahnhofsplatz 13"),
                               ("Sonderausstellung „Licht und Schatten“", "exhibition", "Am Wall 207")):
        venues[name] = client.call("POST", "/venues", {"organizer_id": org["id"], "name": name, "kind": kind,
                                                      "address": address(street, "28195", "Bremen")})["id"]
    ids["museum_venues"] = venues
    all_venues = list(venues.values())
    products = [
        {"name": "Jahreskarte Verbund", "validity_mode": "from_purchase", "months": 12, "price_cents": 6500,
         "channels": ["online", "cashdesk", "phone", "agency"], "venue_ids": all_venues},
        {"name": "Jahreskarte Stadtmuseum", "validity_mode": "from_first_entry", "months": 12,
         "price_cents": 3500, "channels": ["online", "cashdesk"], "venue_ids": [venues["Stadtmuseum"]]},
        {"name": "Jahreskarte Verbund ermäßigt", "validity_mode": "from_purchase", "months": 12,
         "price_cents": 4000, "channels": ["cashdesk", "phone"], "venue_ids": all_venues[:3]},
        {"name": "Kalenderjahreskarte 2027", "validity_mode": "fixed", "valid_from": "2027-01-01",
         "valid_until": "2027-12-31", "price_cents": 5500, "vat_code": "7",
         "channels": ["online", "cashdesk", "phone"], "venue_ids": all_venues},
    ]
    ids["annual_products"] = [
        client.call("POST", "/annual-ticket-products", {"organizer_id": org["id"], **p})["id"] for p in products]


def theatre(client: Client, ids: dict, performance_count: int) -> None:
    org = client.call("POST", "/organizers", {
        "name": "Theater Nordstadt gGmbH", "address": address("Theaterstraße 1", "28195", "Bremen"),
        "tax_number": "60/145/54321", "sepa_creditor_id": "DE98ZZZ09999999999"})
    ids["theatre_organizer"] = org["id"]
    zones = {}
    for code, name, color in (("1", "Preiskategorie I", "#b3261e"), ("2", "Preiskategorie II", "#e8710a"),
                              ("3", "Preiskategorie III", "#188038"), ("4", "Preiskategorie IV", "#1967d2")):
        zones[code] = client.call("POST", "/price-zones", {"organizer_id": org["id"], "code": code, "name": name,
                                                          "color": color, "sort": int(code)})["id"]
    ids["zones"] = zones
    house = client.call("POST", "/venues", {"organizer_id": org["id"], "name": "Großes Haus", "kind": "stage",
                                            "address": address("Theaterstraße 1", "28195", "Bremen")})["id"]
    studio = client.call("POST", "/venues", {"organizer_id": org["id"], "name": "Studio", "kind": "stage",
                                             "address": address("Theaterstraße 3", "28195", "Bremen")})["id"]
    plan = client.call("POST", "/seating-plans", main_house_plan(house))
    variants = {v["name"]: v["id"] for v in plan["variants"]}
    studio_plan = client.post_csv("/seating-plans/import-csv", {"venue_id": studio, "name": "Studio"},
                                  studio_plan_csv())
    ids["plans"] = {"Großes Haus": plan["id"], "Studio": studio_plan["id"]}
    season = client.call("POST", "/seasons", {"organizer_id": org["id"], "name": "2026/27",
                                              "starts_on": "2026-09-01", "ends_on": "2027-07-15"})["id"]
    ids["season"] = season

    house_prices = [{"zone_id": zones[c], "price_cents": p} for c, p in
                    (("1", 5800), ("2", 4600), ("3", 3400), ("4", 2200))]
    studio_prices = [{"zone_id": zones["1"], "price_cents": 2400}, {"zone_id": zones["2"], "price_cents": 1900}]
    rings: dict[str, list[str]] = {}
    perf_ids: list[str] = []
    start = dt.date(2026, 9, 19)
    for r, (ring, weekday_offset, hour) in enumerate((("A", 0, 19), ("B", 1, 18), ("C", 4, 19))):
        rings[ring] = []
        for i, play in enumerate(PLAYS):
            day = start + dt.timedelta(days=weekday_offset + 35 * i + 7 * r)
            variant = variants["Standard (Orchestergraben offen)"] if play in OPERA else \
                variants["Orchestergraben überbaut"]
            perf = client.call("POST", "/performances", {
                "venue_id": house, "variant_id": variant, "season_id": season, "title": play,
                "starts_at": _at(day, hour, 30 if hour == 19 else 0), "prices": house_prices})
            rings[ring].append(perf["id"])
            perf_ids.append(perf["id"])
    studio_variant = studio_plan["variants"][0]["id"]
    studio_perfs = []
    extra = max(8, performance_count - len(perf_ids))
    for i in range(extra):
        day = dt.date(2026, 10, 1) + dt.timedelta(days=(i * 279) // extra)
        perf = client.call("POST", "/performances", {
            "venue_id": studio, "variant_id": studio_variant, "season_id": season,
            "title": STUDIO_PLAYS[i % len(STUDIO_PLAYS)], "starts_at": _at(day, 20), "prices": studio_prices})
        studio_perfs.append(perf["id"])
        perf_ids.append(perf["id"])
    ids["performances"] = perf_ids
    ids["rings"] = rings
    subscriptions(client, ids, org["id"], season, zones, rings, studio_perfs)


def _windows(agency: bool) -> list[dict]:
    out = []
    for channel in ("online", "cashdesk", "phone"):
        out.append({"channel": channel, "phase": "renewal", "starts_at": "2026-03-01T09:00:00+01:00",
                    "ends_at": "2026-05-15T09:00:00+02:00"})
        out.append({"channel": channel, "phase": "general", "starts_at": "2026-05-15T09:00:00+02:00",
                    "ends_at": "2027-06-30T23:59:00+02:00"})
    if agency:
        out.append({"channel": "agency", "phase": "general", "starts_at": "2026-05-15T09:00:00+02:00",
                    "ends_at": "2027-06-30T23:59:00+02:00"})
    return out


def subscriptions(client: Client, ids: dict, org: str, season: str, zones: dict, rings: dict,
                  studio_perfs: list[str]) -> None:
    common = {"organizer_id": org, "season_id": season, "vat_code": "exempt"}
    ring_prices = [{"zone_id": zones[c], "price_cents": p} for c, p in
                   (("1", 36800), ("2", 29400), ("3", 21600), ("4", 14000))]
    specs = []
    for ring, title in (("A", "Premierenring"), ("B", "Sonntagsring"), ("C", "Freitagsring")):
        specs.append({**common, "name": f"Abo-Ring {ring}", "title": title,
                      "subtitle": "8 Vorstellungen im Großen Haus",
                      "description": "Ihr Stammplatz an acht Abenden der Spielzeit 2026/27.", "kind": "ring",
                      "print_options": "both", "transferable": ring != "A", "performance_ids": rings[ring],
                      "zone_prices": ring_prices, "sale_windows": _windows(agency=ring == "A")})
    specs.append({**common, "name": "Wahl-Abo Studio 5 aus 8", "title": "Wahl-Abo Studio",
                  "subtitle": "5 aus 8 Vorstellungen", "kind": "choice", "pick_count": 5,
                  "performance_ids": studio_perfs[:8], "print_options": "single_tickets",
                  "zone_prices": [{"zone_id": zones["1"], "price_cents": 10000},
                                  {"zone_id": zones["2"], "price_cents": 8000}], "sale_windows": _windows(False)})
    offer = studio_perfs[:8] + [rings["C"][i] for i in (1, 4, 6)]
    specs.append({**common, "name": "Wahlgutschein 6er", "title": "6 Wahlgutscheine", "kind": "voucher",
                  "voucher_count": 6, "voucher_value_cents": 2500, "price_cents": 12000,
                  "performance_ids": offer, "print_options": "pass", "transferable": True,
                  "sale_windows": _windows(agency=True)})
    combi_perfs = [rings["B"][0], rings["B"][3], studio_perfs[2]]
    combi_prices = []
    for perf in combi_perfs[:2]:
        combi_prices += [{"performance_id": perf, "zone_id": zones[c], "price_cents": p}
                         for c, p in (("1", 5200), ("2", 4100), ("3", 3000), ("4", 1900))]
    combi_prices += [{"performance_id": combi_perfs[2], "zone_id": zones[c], "price_cents": p}
                     for c, p in (("1", 2100), ("2", 1700))]
    specs.append({**common, "name": "Kombi-Ticket Klassiker", "title": "Kombi Klassiker",
                  "subtitle": "Traviata, Zauberflöte und ein Abend im Studio", "kind": "combi",
                  "performance_ids": combi_perfs, "combi_prices": combi_prices, "print_options": "single_tickets"})
    ids["subscriptions"] = {}
    for spec in specs:
        product = client.call("POST", "/subscription-products", spec)
        ids["subscriptions"][spec["name"]] = product["id"]
        tiers = [("Schüler/Studierende", "percent", 50, True), ("Schwerbehinderte (GdB ab 50)", "percent", 30, True),
                 ("Ehrenkarte", "complimentary", 0, False)]
        if spec["kind"] == "ring":
            tiers.append(("Frühbucher", "fixed", 2000, False))
        for sort, (name, kind, value, by_all) in enumerate(tiers):
            client.call("POST", "/discount-tiers", {"product_id": product["id"], "name": name, "kind": kind,
                                                    "value": value, "bookable_by_all": by_all, "sort": sort})
        if spec.get("sale_windows") and any(w["channel"] == "agency" for w in spec["sale_windows"]):
            client.call("PATCH", f"/subscription-products/{product['id']}", {"agency_release": True})


def customers(client: Client, ids: dict, count: int, seed: int, progress: Callable[[str], None]) -> None:
    rng = random.Random(seed)
    created = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        postcode, town = rng.choice(TOWNS)
        body = {"salutation": rng.choice(["Frau", "Herr", ""]), "first_name": first, "last_name": last,
                "address": address(f"{rng.choice(STREETS)} {rng.randint(1, 180)}", postcode, town),
                "email": f"{first}.{last}.{i}@example.org".lower().replace("ü", "ue").replace("ö", "oe")
                .replace("ä", "ae").replace("ß", "ss"),
                "phone": f"+49 421 {rng.randint(100000, 9999999)}"}
        created.append(client.call("POST", "/customers", body)["id"])
        if (i + 1) % 5000 == 0:
            progress(f"{i + 1} of {count} customers")
    ids["customers"] = len(created)
    ids["first_customer"] = created[0] if created else None
