"""Card print data (A7) and card printers: real cards from the sample hub -> PDF (both shipped layouts) ->
image (pypdfium2) -> QR decoded by zxing-cpp -> admitted by a real `tessera card verify` subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image, ImageChops

from core.printing.card_layout import (
    CardFace,
    LayoutError,
    face_from_card,
    load_layout,
    render_cards,
    render_carrier_sheet,
)
from devices.printers.card import CupsPrinter, FolderPrinter, PrintError, load_card_printer, open_card_printer
from devices.profiles import ProfileError
from tests.cardkit import make_kit

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ["museum-standard", "museum-photo"]
ORGANIZER = "Museumsverbund Musterstadt"
PT_PER_MM = 72 / 25.4


@pytest.fixture
def kit(sample_hub, tmp_path):
    return make_kit(sample_hub, tmp_path)


def face_for(kit, card: dict, photo: bytes | None = None) -> CardFace:
    product = kit.hub.db.execute("SELECT name FROM annual_products WHERE id = ?", (card["product_id"],)).fetchone()
    return face_from_card(card, product=product["name"], organizer=ORGANIZER, photo=photo)


def page_images(pdf: bytes, dpi: int = 600) -> list[Image.Image]:
    doc = pdfium.PdfDocument(pdf)
    return [page.render(scale=dpi / 72).to_pil() for page in doc]


def decode_qr(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image) if result.format == zxingcpp.BarcodeFormat.QRCode]


def photo_bytes() -> bytes:
    image = Image.new("RGB", (220, 280), "#6A8CAF")
    image.paste(Image.new("RGB", (120, 120), "#F2D0A9"), (50, 50))
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


@pytest.mark.slow  # a real tessera card verify process
@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_a_printed_card_scans_and_is_admitted(kit, tmp_path, layout_name):
    card = kit.issue(0, holder="Jürgen Müller-Weiß")
    kit.sync()
    layout = load_layout(layout_name)
    pdf = render_cards([face_for(kit, card, photo_bytes())], layout)
    doc = pdfium.PdfDocument(pdf)
    assert len(doc) == 1
    width, height = doc[0].get_size()
    assert width == pytest.approx(85.6 * PT_PER_MM, abs=0.01) and height == pytest.approx(54 * PT_PER_MM, abs=0.01)
    text = doc[0].get_textpage().get_text_range()
    assert "Jürgen Müller-Weiß" in text and card["number"] in text  # umlauts and ß survive WinAnsi

    (image,) = page_images(pdf)
    image.save(tmp_path / f"{layout_name}.png")  # looked at by hand while writing this test
    assert decode_qr(image) == [card["code"]]
    verdict = subprocess.run([sys.executable, "-m", "cli.main", "card", "verify", decode_qr(image)[0], "--data",
                              str(kit.gate_dir)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert verdict.returncode == 0, verdict.stderr
    assert json.loads(verdict.stdout)["holder"] == "Jürgen Müller-Weiß"


def test_layouts_differ_and_batches_are_one_card_per_page(kit):
    cards = [kit.issue(0, holder=f"Holder {i}") for i in range(3)]
    faces = [face_for(kit, card) for card in cards]
    pdfs = {name: render_cards(faces, load_layout(name)) for name in LAYOUTS}
    images = {}
    for name, pdf in pdfs.items():
        doc = pdfium.PdfDocument(pdf)
        assert len(doc) == 3
        assert [doc[i].get_textpage().get_text_range().count(f"Holder {i}") for i in range(3)] == [1, 1, 1]
        images[name] = page_images(pdf, dpi=300)
        assert [decode_qr(img) for img in images[name]] == [[card["code"]] for card in cards]
    a, b = (images[name][0].convert("RGB").resize((86, 54)) for name in LAYOUTS)
    differing = sum(ImageChops.difference(a, b).convert("L").histogram()[1:])
    assert differing > 86 * 54 // 3  # visibly different, not one pixel


def test_long_names_shrink_to_fit_and_unprintable_characters_do_not_break(kit):
    layout = load_layout("museum-standard")
    field = next(f for f in layout.fields if f.source == "holder_name")
    card = kit.issue(0, holder="Maximiliane Friederike von und zu Hohenzollern-Sigmaringen-Ölbach 中")
    pdf = render_cards([face_for(kit, card)], layout)
    page = pdfium.PdfDocument(pdf)[0]
    textpage = page.get_textpage()
    text = textpage.get_text_range()
    assert "Maximiliane" in text and "中" not in text
    # every printed character of the name stays inside its box (x + max width)
    start = text.index("Maximiliane")
    right = max(textpage.get_charbox(i)[2] for i in range(start, start + 40) if text[i] not in "\r\n")
    assert right <= (field.x_mm + field.max_width_mm) * PT_PER_MM + 0.5
    assert decode_qr(page_images(pdf, dpi=300)[0]) == [card["code"]]


def test_carrier_sheet_has_the_address_in_the_window_and_a_scannable_card(kit):
    card = kit.issue(0, holder="Erika Müller")
    layout = load_layout("museum-standard")
    pdf = render_carrier_sheet([(face_for(kit, card), ["Erika Müller", "Hauptstraße 5", "", "12345 Köln"])], layout)
    page = pdfium.PdfDocument(pdf)[0]
    width, height = page.get_size()
    assert (round(width / PT_PER_MM), round(height / PT_PER_MM)) == (210, 297)
    textpage = page.get_textpage()
    text = textpage.get_text_range()
    for line in ("Erika Müller", "Hauptstraße 5", "12345 Köln", ORGANIZER):
        assert line in text
    first = textpage.get_charbox(text.index("Hauptstraße"))
    left_mm, top_mm = first[0] / PT_PER_MM, (height - first[3]) / PT_PER_MM
    assert 20 <= left_mm <= 30 and 45 + 17.7 <= top_mm <= 45 + 45  # DIN 5008 form B address field
    assert decode_qr(page_images(pdf, dpi=300)[0]) == [card["code"]]


def test_background_image_relative_to_the_layout_file(kit, tmp_path):
    folder = tmp_path / "layouts"
    (folder / "img").mkdir(parents=True)
    Image.new("RGB", (40, 25), "#C0E0C0").save(folder / "img" / "bg.png")
    text = (ROOT / "card_layouts" / "museum-standard.toml").read_text()
    text = text.replace('colour = "#FFFFFF"', 'image = "img/bg.png"', 1)
    (folder / "green.toml").write_text(text)
    layout = load_layout(folder / "green.toml")
    card = kit.issue(0)
    (image,) = page_images(render_cards([face_for(kit, card)], layout), dpi=300)
    assert image.convert("RGB").getpixel((image.width - 5, image.height - 5)) == (0xC0, 0xE0, 0xC0)
    assert decode_qr(image) == [card["code"]]
    (folder / "img" / "bg.png").unlink()
    with pytest.raises(LayoutError, match=r"green\.toml: background\.image: cannot read"):
        load_layout(folder / "green.toml")


@pytest.mark.parametrize(("change", "field", "detail"), [
    (("font = \"Helvetica-Bold\"", "font = \"Arial\""), "fields[0].font", "unknown font 'Arial'"),
    (("size_pt = 10", "size_pt = \"10\""), "fields[1].size_pt", "Expected float, got str"),
    (("max_width_mm = 47", "max_widht_mm = 47"), "fields[1].max_widht_mm", "unknown field"),
    (("error = \"M\"", "error = \"X\""), "qr.error", "Invalid enum value 'X'"),
    (("colour = \"#1F3A5F\"", "colour = \"navy\""), "boxes[0].colour", "Expected str matching regex"),
    (("x_mm = 53.6", "x_mm = 63.6"), "qr", "does not fit on the 85.6 x 54 mm page"),
    (("[qr]", "[qrcode]"), "qrcode", "unknown field"),
])
def test_a_bad_layout_names_file_and_field(tmp_path, change, field, detail):
    text = (ROOT / "card_layouts" / "museum-standard.toml").read_text()
    assert change[0] in text
    bad = tmp_path / "bad-layout.toml"
    bad.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(LayoutError) as err:
        load_layout(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: {field}: ") and detail in message, message
    assert "\n" not in message


def test_missing_and_broken_layout_files(tmp_path, monkeypatch):
    with pytest.raises(LayoutError, match="no such layout file"):
        load_layout("does-not-exist")
    (tmp_path / "x.toml").write_text("name = ")
    with pytest.raises(LayoutError, match=r"x\.toml: invalid TOML"):
        load_layout(tmp_path / "x.toml")
    with pytest.raises(LayoutError, match="not a layout name"):
        load_layout("bad name!")
    monkeypatch.setenv("TESSERA_CARD_LAYOUTS", str(tmp_path))
    (tmp_path / "mini.toml").write_text('name = "Mini"\n[qr]\nx_mm = 1\ny_mm = 1\nsize_mm = 40\n')
    assert load_layout("mini").page.width_mm == 85.6  # CR80 by default


# -- card printers ----------------------------------------------------------------------------------------


def test_shipped_card_printer_profiles_load():
    folder = load_card_printer("card-printer-folder")
    assert folder.driver == "folder" and folder.folder and folder.name == "card-printer-folder"
    cups = load_card_printer("card-printer-evolis-cups")
    assert cups.driver == "cups" and cups.cups and cups.cups.media == "CR80"


@pytest.mark.parametrize(("text", "field"), [
    ('kind = "card_printer"\nmodel = "x"\ndriver = "folder"\n[folder]\npaht = "/tmp"\n', "folder.paht"),
    ('kind = "card_printer"\nmodel = "x"\ndriver = "cups"\n[cups]\nqueue = 5\n', "cups.queue"),
    ('kind = "card_printer"\nmodel = "x"\ndriver = "cups"\n', "cups"),
    ('kind = "card_printer"\nmodel = "x"\ndriver = "cups"\n[cups]\nqueue = "q"\n[folder]\npath = "/"\n', "folder"),
    ('kind = "relay"\nmodel = "x"\n', "kind"),
])
def test_a_bad_printer_profile_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "printer.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_card_printer(path)
    assert str(err.value).startswith(f"{path}: {field}: "), str(err.value)


def test_the_folder_printer_writes_atomically_with_unique_names(tmp_path, monkeypatch):
    folder = tmp_path / "hot"
    folder.mkdir()
    printer = open_card_printer("card-printer-folder", folder=folder)
    assert isinstance(printer, FolderPrinter)
    replaced = []
    real_replace = os.replace

    def watching_replace(src, dst):
        # at the moment of the rename the complete file exists only under a hidden temp name in the folder
        assert Path(src).parent == folder and Path(src).name.startswith(".") and Path(src).read_bytes() == pdf
        assert not Path(dst).exists()
        replaced.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    pdf = b"%PDF-1.4 test"
    first = printer.print_pdf(pdf, job="batch 1/ä")
    second = printer.print_pdf(pdf, job="batch 1/ä")
    assert first != second and replaced == [first, second]
    assert sorted(p.name for p in folder.iterdir()) == sorted([Path(first).name, Path(second).name])
    assert all(name.endswith(".pdf") and name.startswith("card-") for name in os.listdir(folder))
    assert Path(first).read_bytes() == pdf


def test_a_missing_or_unwritable_folder_raises_print_error_and_leaves_nothing(tmp_path):
    with pytest.raises(PrintError, match="does not exist"):
        FolderPrinter(tmp_path / "not-mounted").print_pdf(b"%PDF")
    # a folder nobody may create files in, root included (tests run as root, so chmod would not do)
    with pytest.raises(PrintError, match="cannot write"):
        FolderPrinter(Path("/proc/self")).print_pdf(b"%PDF")
    folder = tmp_path / "ok"
    folder.mkdir()
    FolderPrinter(folder).print_pdf(b"%PDF")
    assert [p.suffix for p in folder.iterdir()] == [".pdf"]  # and no .part file left over


def fake_lp(tmp_path: Path, monkeypatch, exit_code: int = 0) -> Path:
    """There is no CUPS here: a fake `lp` first on PATH records its arguments and the file it was given
    (CUPS copies the file at submission, so must the fake), and answers like lp does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "lp-calls.jsonl"
    script = bin_dir / "lp"
    script.write_text(f"""#!{sys.executable}
import json, shutil, sys
args = sys.argv[1:]
shutil.copy(args[-1], {str(tmp_path / "lp-received.pdf")!r})
with open({str(log)!r}, "a") as out:
    out.write(json.dumps(args) + "\\n")
if {exit_code}:
    print("lp: The printer or class does not exist.", file=sys.stderr)
    sys.exit({exit_code})
print("request id is evolis-primacy2-42 (1 file(s))")
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_the_cups_printer_calls_lp_with_queue_and_media(kit, tmp_path, monkeypatch):
    log = fake_lp(tmp_path, monkeypatch)
    printer = open_card_printer("card-printer-evolis-cups")
    assert isinstance(printer, CupsPrinter)
    pdf = render_cards([face_for(kit, kit.issue(0))], load_layout("museum-standard"))
    assert printer.print_pdf(pdf, job="batch-7") == "evolis-primacy2-42"
    (args,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert args[:4] == ["-d", "evolis-primacy2", "-o", "media=CR80"]
    assert args[4:6] == ["-t", "batch-7"] and args[-1].endswith(".pdf")
    assert (tmp_path / "lp-received.pdf").read_bytes() == pdf
    assert not Path(args[-1]).exists()  # the temporary file is gone after submission


def test_a_failing_lp_raises_print_error(tmp_path, monkeypatch):
    fake_lp(tmp_path, monkeypatch, exit_code=1)
    printer = open_card_printer("card-printer-evolis-cups")
    with pytest.raises(PrintError, match=r"evolis-primacy2: lp exited with 1: lp: The printer or class does not"):
        printer.print_pdf(b"%PDF")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PrintError, match="not found"):
        printer.print_pdf(b"%PDF")


def test_a_fixed_qr_mask_still_scans(kit):
    layout = load_layout("museum-standard")
    layout = msgspec.structs.replace(layout, qr=msgspec.structs.replace(layout.qr, mask=5))
    card = kit.issue(0)
    assert decode_qr(page_images(render_cards([face_for(kit, card)], layout), dpi=300)[0]) == [card["code"]]
