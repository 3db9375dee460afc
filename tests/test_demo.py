"""`tessera demo` as a new user meets it (issue 12): a real process on loopback.

Every node of the demo is enrolled and syncing like a real one: a card sold at the demo's
cash desk is admitted at the demo's gate within seconds (before, the gate never synced and
refused it as UNKNOWN_SIGNER). The shop's mail lands in a mail sink in the data folder, so
its personalization link can be opened. Raw UTF-8 in a URL (what curl sends for
`?q=Müller`) is served by the desk too."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.test_cli import Server, scan, sell_at_demo_desk
from tests.test_search_unicode import raw_get

pytestmark = pytest.mark.slow  # a real demo process with four servers
SHOTS = Path(__file__).resolve().parents[1] / "test-output" / "first-hour"  # screenshots, for people to look at


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo") / "demo"
    server = Server("demo", "--data", str(data))
    while not any("Stop with Ctrl-C" in line for line in server.lines):
        line = server.proc.stdout.readline()
        assert line, "the demo stopped before it was ready"
        server.lines.append(line)
    server.text = "".join(server.lines)
    server.data = data
    yield server
    assert server.stop() == 0
    errors = server.proc.stderr.read()
    assert "Traceback" not in errors
    assert errors.count("mail is not configured") == 0 and "failed (will retry)" not in errors


def test_a_card_sold_at_the_demo_desk_is_admitted_at_the_demo_gate_within_seconds(demo):
    sale = sell_at_demo_desk(demo.text)
    code = sale["order"]["items"][0]["card"]["code"]
    gate_url = re.search(r"gate\s+(http://\S+)", demo.text).group(1)
    started = time.monotonic()
    verdict = wait_until(lambda: (v := scan(gate_url, code))["reason"] != "UNKNOWN_SIGNER" and v, timeout=30,
                         interval=0.05, what="the desk's card reaching the gate")
    print(f"desk sale admitted at the gate after {time.monotonic() - started:.1f} s")
    assert verdict["reason"] == "ADMITTED", verdict
    assert scan(gate_url, code)["reason"] == "PASSBACK"
    assert "A card sold at the cash desk reaches the gate" in demo.text  # and how to scan it
    assert f"{gate_url}/api/scan" in demo.text


def order_in_the_shop(demo, key: str) -> tuple[str, EmailMessage]:
    """A shop order over the hub's API with the printed shop token; its mail, read from the
    demo's mail folder, and the personalization link in it."""
    mail_dir = demo.data / "mail"
    before = set(mail_dir.glob("*.eml"))
    hub_url = re.search(r"hub API\s+(http://\S+)/api/v1", demo.text).group(1)
    shop_token = re.search(r"shop token\s+(tsr_\S+)", demo.text).group(1)
    product = re.search(r'"product_id": "([0-9a-f-]{36})"', demo.text).group(1)
    body = {"lines": [{"product_id": product}], "delivery": "mail", "payment_reference": key,
            "customer": {"first_name": "Eva", "last_name": "Beispiel", "email": "eva@example.org",
                         "street": "Am Markt 1", "postcode": "28195", "town": "Bremen"}}
    req = urllib.request.Request(hub_url + "/api/v1/shop/orders", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {shop_token}", "Idempotency-Key": key,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        assert resp.status == 201
    new = wait_until(lambda: sorted(set(mail_dir.glob("*.eml")) - before), timeout=20, interval=0.05,
                     what="the order's mail in the sink")
    message = BytesParser(policy=policy.default).parsebytes(new[-1].read_bytes())
    link = re.search(r"(http://\S+/p/[A-Za-z0-9_-]+)", message.get_body(("plain",)).get_content()).group(1)
    assert link.startswith(hub_url)
    return link, message


def test_the_shop_mail_lands_in_the_demo_mail_folder_and_its_link_opens(demo):
    assert f"{demo.data / 'mail'}/*.eml" in demo.text
    link, message = order_in_the_shop(demo, "t-1")
    assert message["To"] == "eva@example.org" and "Museumsverbund Nordstadt" in message["From"]
    with urllib.request.urlopen(link, timeout=10) as resp:
        page = resp.read().decode()
    assert resp.status == 200 and "Jahreskarte Verbund" in page


def test_the_desk_takes_raw_utf8_in_its_customer_search(demo):
    desk_url = re.search(r"cash desk\s+(http://\S+)", demo.text).group(1)
    name, pin = re.search(r"log in as (.+), PIN (\d+)", demo.text).groups()
    jar = urllib.request.HTTPCookieProcessor()
    opener = urllib.request.build_opener(jar)
    with opener.open(desk_url + "/api/operators", timeout=10) as resp:
        operator = next(o for o in json.loads(resp.read()) if o["name"] == name)
    req = urllib.request.Request(desk_url + "/api/login", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"operator_id": operator["id"], "pin": pin}).encode())
    opener.open(req, timeout=10).close()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar.cookiejar)
    found = wait_until(lambda: raw_get(desk_url, "/api/customers?q=Müller".encode(), "-", cookie=cookie)[2],
                       timeout=20, interval=0.05, what="customers on the desk's replica")
    assert {c["last_name"] for c in found} == {"Müller"}


def test_the_reopened_personalization_link_shows_the_card_in_a_browser(demo, tmp_path):
    """The link from the sink's mail, in Chromium: personalize, open the link again, and the
    card is there (organizer in the header, QR code centred and readable); screenshots."""
    import zxingcpp
    from PIL import Image

    from tests.browsers import chromium

    SHOTS.mkdir(parents=True, exist_ok=True)
    link, _ = order_in_the_shop(demo, "t-browser")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 412, "height": 915}, locale="de-DE")
        page.goto(link)
        page.fill("#name", "Eva Beispiel")
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert page.locator("#card-number").count(), page.content()[-1500:]
        page.screenshot(path=tmp_path / "01-issued.png", full_page=True)
        page.goto(link)  # the link from the mail, opened again
        assert page.locator("#holder").inner_text() == "Eva Beispiel"
        assert page.locator("#organizer").inner_text() == "Museumsverbund Nordstadt e.V."
        assert "bereits personalisiert" in page.locator(".note").inner_text()
        qr, box = page.locator("#qr svg").bounding_box(), page.locator(".card").bounding_box()
        assert abs((qr["x"] + qr["width"] / 2) - (box["x"] + box["width"] / 2)) < 2  # centred
        page.screenshot(path=tmp_path / "02-reopened.png", full_page=True)
    for shot in ("01-issued.png", "02-reopened.png"):
        shutil.copy2(tmp_path / shot, SHOTS / f"personalize-{shot}")
    found = zxingcpp.read_barcodes(Image.open(tmp_path / "02-reopened.png"))
    codes = [r.text for r in found]
    assert len(codes) == 1 and re.fullmatch(r"[0-9A-X]{160}", codes[0])
    corners = found[0].position
    drawn = (min(corners.top_left.x, corners.bottom_left.x) + max(corners.top_right.x, corners.bottom_right.x)) / 2
    assert abs(drawn - (box["x"] + box["width"] / 2)) < 4, (drawn, box)  # the drawing itself is centred
    gate_url = re.search(r"gate\s+(http://\S+)", demo.text).group(1)
    assert wait_until(lambda: (v := scan(gate_url, codes[0]))["reason"] != "UNKNOWN_SIGNER" and v,
                      timeout=20, interval=0.05)["reason"] == "ADMITTED"  # the QR on the page gets in


def test_the_gate_status_page_names_its_venue_and_shows_local_times(demo):
    """Issue 12: the title showed the venue's UUID and the times were UTC ("...Z")."""
    gate_url = re.search(r"gate\s+(http://\S+)", demo.text).group(1)
    code = re.search(r"A card to scan .*\n\s+([0-9A-X]{160})\n", demo.text).group(1)
    scan(gate_url, code)
    with urllib.request.urlopen(gate_url + "/", timeout=10) as resp:
        page = resp.read().decode()
    assert "<title>Stadtmuseum Eingang · Stadtmuseum</title>" in page
    assert "<h1>Stadtmuseum Eingang · Stadtmuseum</h1>" in page
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-", page)  # no venue id
    assert not re.search(r"\d\d:\d\d:\d\d(\.\d+)?Z", page)  # no UTC times
    stamps = re.findall(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d (CET|CEST)", page)
    assert len(stamps) >= 2, page  # the scan's time and the gate's clock, in the venues' zone
    from tests.browsers import chromium

    with chromium() as browser:
        shown = browser.new_page(viewport={"width": 1024, "height": 600})
        shown.goto(gate_url + "/")
        assert shown.title() == "Stadtmuseum Eingang · Stadtmuseum"
        SHOTS.mkdir(parents=True, exist_ok=True)
        shown.screenshot(path=SHOTS / "gate-status.png", full_page=True)


def test_an_older_demo_folder_gets_a_gate_that_syncs(tmp_path):
    """A demo folder from before this change holds a gate set up from the hub's folder, which
    never syncs: the next start moves it aside and enrolls one that does."""
    from core.cards.access import GateRules
    from edge.node_data import gate_rules, write_gate_rules
    from hub.services import provisioning

    data = tmp_path / "demo"
    first = Server("demo", "--data", str(data))
    assert first.stop() == 0
    gate_dir = data / "gate"
    venue = gate_rules(gate_dir).venue_id
    shutil.rmtree(gate_dir)
    provisioning.provision(gate_dir, data / "hub", name="Stadtmuseum Eingang", role="gate")  # the old way
    write_gate_rules(gate_dir, GateRules(venue_id=venue, lockout_minutes=2))
    second = Server("demo", "--data", str(data))
    try:
        while not any("Stop with Ctrl-C" in line for line in second.lines):
            line = second.proc.stdout.readline()
            assert line, "the demo stopped before it was ready"
            second.lines.append(line)
        text = "".join(second.lines)
        code = sell_at_demo_desk(text)["order"]["items"][0]["card"]["code"]
        gate_url = re.search(r"gate\s+(http://\S+)", text).group(1)
        verdict = wait_until(lambda: (v := scan(gate_url, code))["reason"] != "UNKNOWN_SIGNER" and v, timeout=30,
                             interval=0.05, what="the desk's card reaching the re-enrolled gate")
        assert verdict["reason"] == "ADMITTED"
    finally:
        assert second.stop() == 0
    assert "did not sync; moved to" in second.proc.stderr.read()
    assert len(list(data.glob("gate-unsynced-*"))) == 1


def test_the_demo_prints_a_working_office_setup_link(demo):
    """The office app is one click away: the printed link opens the admin's password form."""
    office, setup = re.search(r"office app\s+(http://\S+/office/)\s+\(log in as admin; set its password first at "
                              r"(http://\S+)\)", demo.text).groups()
    with urllib.request.urlopen(setup, timeout=10) as resp:
        page = resp.read().decode()
    assert resp.status == 200 and 'type="password"' in page
    with urllib.request.urlopen(office, timeout=10) as resp:  # not logged in: the login page
        assert resp.status == 200 and "/office/login" in resp.url
