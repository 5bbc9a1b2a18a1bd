"""The README's configuration table says what rinha/config.py does."""

from __future__ import annotations

import re
from pathlib import Path

from rinha.config import SETTINGS

README = Path(__file__).resolve().parents[2] / "README.md"


def table_rows() -> dict[str, str]:
    text = README.read_text()
    block = text.split("<!-- config-table", 1)[1].split("<!-- /config-table -->", 1)[0]
    rows = {}
    for match in re.finditer(r"^\| `(RINHA_\w+)` \| (.+?) \|", block, re.M):
        rows[match.group(1)] = match.group(2).strip("` ")
    return rows


def test_every_setting_documented_with_its_default():
    rows = table_rows()
    for _, env, default, _ in SETTINGS:
        assert env in rows, f"{env} missing from the README table"
        assert rows[env] == (default or "(empty)"), env


def test_no_stale_rows():
    documented = set(table_rows()) - {"RINHA_NO_EXTENSIONS"}
    assert documented == {env for _, env, _, _ in SETTINGS}


def test_the_table_is_the_generated_one():
    from rinha.config import markdown_table

    text = README.read_text()
    block = text.split("<!-- config-table", 1)[1].split("<!-- /config-table -->", 1)[0]
    assert block.split("\n", 1)[1].strip() == markdown_table(), (
        "regenerate the README table with rinha.config.markdown_table()"
    )
