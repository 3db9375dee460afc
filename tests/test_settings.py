"""hub.toml, read once and strictly (hub/settings.py): what the file gets wrong stops the hub with
a line naming the file and the key; what a section gets wrong is that area's own error, raised
when the area asks; the data folder and the settings travel on the app as its HubContext."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from hub import settings
from hub.app import make_app, read_settings
from hub.services import mail, print_batches
from hub.services.mail import MailConfigError
from hub.services.print_batches import PrintConfigError
from hub.web.areas import shop
from hub.web.areas.shop import ShopConfigError
from tests.conftest import Hub


def write(folder: Path, text: str) -> Path:
    path = folder / settings.SETTINGS_FILE
    path.write_text(text, encoding="utf-8")
    return path


def test_without_the_file_every_section_has_its_defaults(tmp_path: Path):
    read = read_settings(tmp_path)
    assert read.get(mail.SECTION) == mail.MailSettings(configured=False, source=str(tmp_path / "hub.toml"))
    assert read.get(print_batches.SECTION) == print_batches.PrintSettings()
    assert read.get(shop.SECTION) == shop.ShopSettings()


def test_each_section_reaches_its_area(tmp_path: Path):
    write(tmp_path, '[mail]\nhost = "smtp.example.org"\n\n[print]\nlayout = "museum-photo"\nbatch_size = 7\n\n'
                    '[shop]\nlink_days = 9\n')
    read = read_settings(tmp_path)
    assert (read.get(mail.SECTION).host, read.get(mail.SECTION).configured) == ("smtp.example.org", True)
    assert (read.get(print_batches.SECTION).layout, read.get(print_batches.SECTION).batch_size) == ("museum-photo", 7)
    assert read.get(shop.SECTION) == shop.ShopSettings(link_days=9)
    assert read.get(mail.SECTION) is read.get(mail.SECTION)  # parsed once, not per question


@pytest.mark.parametrize(("text", "words"), [
    ('[mial]\nhost = "x"\n',
     "unknown section [mial]; known sections: [datev], [mail], [print], [shop], [storage], [web]"),
    ('layout = "museum-photo"\n', "unknown key layout outside any section"),
    ('[print\nlayout = "x"\n', "invalid TOML"),
])
def test_what_the_file_gets_wrong_is_refused_at_once_naming_file_and_key(tmp_path: Path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(settings.SettingsError) as refused:
        read_settings(tmp_path)
    assert words in str(refused.value) and str(path) in str(refused.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path):
    (tmp_path / "hub.toml").write_bytes(b'[shop]\npublic_url = "https://m\xfcseum.example"\n')
    with pytest.raises(settings.SettingsError, match="not UTF-8"):
        read_settings(tmp_path)


@pytest.mark.parametrize(("text", "section", "error", "words"), [
    ('[mail]\nhots = "x"\n', mail.SECTION, MailConfigError, "[mail] has unknown key(s) hots"),
    ('[mail]\nport = "25"\n', mail.SECTION, MailConfigError, "[mail] port must be a whole number"),
    ('[print]\nlayot = "x"\n', print_batches.SECTION, PrintConfigError, "[print] has unknown key(s) layot"),
    ('[print]\nbatch_size = "many"\n', print_batches.SECTION, PrintConfigError, "[print] batch_size must be"),
    ('[shop]\nlink_dayz = 9\n', shop.SECTION, ShopConfigError, "[shop] knows only link_days and public_url"),
    ('[shop]\nlink_days = "9"\n', shop.SECTION, ShopConfigError, "[shop] link_days must be a whole number"),
    ("print = 3\n", print_batches.SECTION, PrintConfigError, "[print] must be a table"),
])
def test_a_broken_section_is_its_areas_error_and_leaves_the_others_usable(tmp_path: Path, text, section, error,
                                                                          words):
    path = write(tmp_path, text)
    read = read_settings(tmp_path)  # the file as a whole is fine
    with pytest.raises(error) as refused:
        read.get(section)
    message = getattr(refused.value, "detail", None) or str(refused.value)
    assert message.startswith(f"{path}: ") and words in message, message
    for other in {mail.SECTION, print_batches.SECTION, shop.SECTION} - {section}:
        read.get(other)


def test_the_app_carries_the_data_folder_and_the_settings_read_when_it_was_made(empty_hub: Hub):
    write(empty_hub.dir, "[print]\nbatch_size = 3\n")
    app = make_app(empty_hub.db)
    hub = settings.context(app)
    assert hub.db is empty_hub.db and hub.data_dir == empty_hub.dir == settings.data_dir_of(empty_hub.db)
    write(empty_hub.dir, "[print]\nbatch_size = 4\n")  # read once: a change needs a new app (a restart)
    assert hub.section(print_batches.SECTION).batch_size == 3
    assert settings.context(make_app(empty_hub.db)).section(print_batches.SECTION).batch_size == 4


def test_make_app_and_tessera_hub_serve_refuse_a_file_they_do_not_understand(empty_hub: Hub, capsys):
    path = write(empty_hub.dir, "[mail]\n\n[printer]\nlayout = 'x'\n")
    with pytest.raises(settings.SettingsError, match=r"unknown section \[printer\]"):
        make_app(empty_hub.db)
    assert main(["hub", "serve", "--data", str(empty_hub.dir), "--no-advertise"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tessera: error: ") and str(path) in err
    assert "unknown section [printer]" in err
