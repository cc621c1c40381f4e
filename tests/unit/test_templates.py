"""Prompt templates: the bundled library, lookup by id/version, rendering, file validation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from activities.controls.templates import (
    TEMPLATE_DIR,
    TEMPLATE_PRODUCTS,
    get_template,
    list_templates,
    load_templates,
    render_template,
)
from schemas.errors import InvalidRequestError
from schemas.music import GM_INSTRUMENTS, MOODS, STRUCTURE_SECTIONS, parse_key

GOOD = """\
id = "jingle"
version = 1
title = "Jingle"
description = "A test jingle."
prompt = "A jingle for {brand} in a {{curly}} style, {mood}"

[variables.brand]
description = "Brand name"

[variables.mood]
description = "Feel"
default = "bright"
"""


def write_template(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- the bundled library --------------------------------------------------------------------


def test_bundled_templates_load_and_are_sensible() -> None:
    latest = {t.id: t for t in list_templates()}
    assert {"podcast-intro", "boss-battle", "lofi-loop", "ambient-bed", "game-layers"} <= set(
        latest
    )
    for tpl in latest.values():
        d = tpl.defaults
        assert set(d) >= {"duration_s", "tempo_bpm", "key", "instruments", "product"}, tpl.ref
        assert all(name in GM_INSTRUMENTS for name in d["instruments"]), tpl.ref
        parse_key(d["key"])
        assert d["product"] in TEMPLATE_PRODUCTS
        assert 0 <= d.get("energy", 0.5) <= 1
        assert set(d.get("structure", [])) <= set(STRUCTURE_SECTIONS)
        # Every bundled template renders with its required variables only.
        rendered = render_template(tpl, dict.fromkeys(tpl.required_variables, "Acme"))
        assert "{" not in rendered.prompt and "}" not in rendered.prompt
        assert rendered.defaults["mood"] in MOODS
    assert latest["lofi-loop"].defaults["product"] == "loop"
    assert latest["game-layers"].defaults["product"] == "layers"
    assert latest["podcast-intro"].required_variables == ["brand"]
    assert latest["podcast-intro"].variables["mood"].default == "warm"
    assert latest["boss-battle"].variables["setting"].default == "castle"


def test_bundled_directory_is_inside_the_package() -> None:
    # Shipped in the wheel with the `activities` package (hatchling packs package data).
    assert TEMPLATE_DIR.parent.name == "controls" and (TEMPLATE_DIR.parent / "__init__.py").exists()
    assert len(load_templates(TEMPLATE_DIR)) > len(list_templates())  # old versions kept


def test_list_is_cached() -> None:
    assert get_template("lofi-loop") is get_template("lofi-loop@1")


def test_get_template_by_id_and_version() -> None:
    assert get_template("podcast-intro").version == 2  # latest
    assert get_template(" Podcast-Intro@1 ").version == 1
    old = get_template("podcast-intro@1")
    assert (old.id, old.version, old.ref) == ("podcast-intro", 1, "podcast-intro@1")
    assert old.prompt != get_template("podcast-intro@2").prompt


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope", r"unknown template 'nope'; known templates: ambient-bed, boss-battle, "),
        ("podcast-intro@9", r"known versions: podcast-intro@1, podcast-intro@2"),
        ("podcast-intro@latest", r"unknown template version"),
        ("podcast-intro@²", r"unknown template version"),
        ("", r"unknown template ''"),
    ],
)
def test_unknown_template_or_version(ref: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        get_template(ref)


# --- rendering ------------------------------------------------------------------------------


def test_render_fills_variables_and_defaults() -> None:
    tpl = get_template("podcast-intro@2")
    rendered = render_template(tpl, {"brand": "  The Deep\n\tDive  ", "mood": "happy"})
    assert (rendered.template_id, rendered.version) == ("podcast-intro", 2)
    assert "the The Deep Dive podcast: happy," in rendered.prompt
    assert rendered.variables == {"brand": "The Deep Dive", "mood": "happy"}
    assert rendered.defaults["mood"] == "happy"  # defaults.mood = "{mood}"
    assert rendered.defaults["duration_s"] == 15
    # Default used when not given, or given blank.
    for given in ({"brand": "X"}, {"brand": "X", "mood": "   "}):
        assert render_template(tpl, given).defaults["mood"] == "warm"
    # Rendering never mutates the template's own defaults.
    rendered.defaults["instruments"].append("harp")
    assert "harp" not in tpl.defaults["instruments"]


def test_values_are_text_not_placeholders() -> None:
    rendered = render_template(get_template("podcast-intro"), {"brand": "{mood} {0} {__class__}"})
    assert "for the {mood} {0} {__class__} podcast" in rendered.prompt


def test_missing_and_unknown_variables() -> None:
    tpl = get_template("podcast-intro")
    with pytest.raises(InvalidRequestError, match=r"needs variable\(s\): brand"):
        render_template(tpl, {})
    with pytest.raises(InvalidRequestError, match=r"needs variable\(s\): brand"):
        render_template(tpl, {"brand": " \n "})
    with pytest.raises(InvalidRequestError) as err:
        render_template(tpl, {"brand": "X", "colour": "red", "bpm": "90"})
    assert "has no variable(s) bpm, colour; its variables are: brand, mood" in str(err.value)
    with pytest.raises(InvalidRequestError) as err:  # both problems reported at once
        render_template(tpl, {"colour": "red"})
    assert len(err.value.problems) == 2


def test_templated_mood_must_be_a_known_mood() -> None:
    tpl = get_template("podcast-intro")
    assert render_template(tpl, {"brand": "X", "mood": " Dark "}).defaults["mood"] == "dark"
    with pytest.raises(InvalidRequestError, match=r"unknown mood 'mysterious'; known moods: calm"):
        render_template(tpl, {"brand": "X", "mood": "mysterious"})


def test_long_values_are_rejected() -> None:
    tpl = get_template("podcast-intro")
    render_template(tpl, {"brand": "x" * 200})
    with pytest.raises(InvalidRequestError, match="brand is 201 characters; the limit is 200"):
        render_template(tpl, {"brand": "x" * 201})


# --- validating template files --------------------------------------------------------------


def test_load_good_template_directory(tmp_path: Path) -> None:
    write_template(tmp_path, "jingle@1.toml", GOOD)
    write_template(tmp_path, "jingle@2.toml", GOOD.replace("version = 1", "version = 2"))
    write_template(tmp_path, "README.md", "not a template")
    templates = load_templates(tmp_path)
    assert [t.ref for t in templates] == ["jingle@1", "jingle@2"]
    assert templates[0].defaults == {}
    rendered = render_template(get_template("jingle", tmp_path), {"brand": "Acme"})
    assert rendered.prompt == "A jingle for Acme in a {curly} style, bright"
    assert [t.ref for t in list_templates(tmp_path)] == ["jingle@2"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "jingle@1.toml",
            GOOD.replace("{mood}", "{mood} {tempo}"),
            r"jingle@1\.toml: placeholder\(s\) tempo are not declared under \[variables\]",
        ),
        (
            "jingle@1.toml",
            GOOD.replace(", {mood}", ""),
            r"variable\(s\) mood are declared but never used",
        ),
        ("jingle@1.toml", GOOD + "[defaults\nduration_s = 3\n", r"jingle@1\.toml: malformed TOML"),
        ("jingle@1.toml", GOOD.replace("{mood}", "{mood!r}"), r"must be a plain"),
        ("jingle@1.toml", GOOD.replace("{mood}", "{mood:>9}"), r"must be a plain"),
        ("jingle@1.toml", GOOD.replace("{mood}", "{}"), r"placeholder \{\} must be a plain"),
        ("jingle@1.toml", GOOD.replace("{mood}", "{mood"), r"prompt: .*literal braces"),
        ("jingle@2.toml", GOOD, r"must be named jingle@1\.toml"),
        ("jingle.toml", GOOD, r"must be named jingle@1\.toml"),
        (
            "jingle@1.toml",
            GOOD.replace("title = ", "colour = 'red'\ntitle = "),
            r"colour: Extra inputs are not permitted",
        ),
        (
            "jingle@1.toml",
            GOOD + "[defaults]\ninstruments = ['kazoo']\n",
            r"defaults\.instruments: unknown instrument 'kazoo'",
        ),
        ("jingle@1.toml", GOOD + "[defaults]\nkey = 'H minor'\n", r"defaults\.key: unknown key"),
        ("jingle@1.toml", GOOD + "[defaults]\nmeter = '4/3'\n", r"defaults\.meter: .*beat unit"),
        ("jingle@1.toml", GOOD + "[defaults]\nmood = 'groovy'\n", r"unknown mood 'groovy'"),
        ("jingle@1.toml", GOOD + "[defaults]\nstructure = ['hook']\n", r"section\(s\) \['hook'\]"),
        (
            "jingle@1.toml",
            GOOD + "[defaults]\nmood = '{mood}'\n",
            r"defaults\.mood: unknown mood 'bright'",
        ),
        ("jingle@1.toml", GOOD + "[defaults]\nproduct = 'symphony'\n", r"product 'symphony'"),
        ("jingle@1.toml", GOOD + "[defaults]\ntempo_bpm = 900\n", r"defaults\.tempo_bpm"),
        ("jingle@1.toml", GOOD + "[defaults]\nenergy = 2\n", r"defaults\.energy"),
        ("jingle@1.toml", GOOD + "[defaults]\nswing = 0.5\n", r"defaults\.swing"),
        ("jingle@1.toml", GOOD + "[defaults]\nmood = '{colour}'\n", r"colour are not declared"),
        ("jingle@1.toml", GOOD.replace('default = "bright"', "default = 3"), r"variables\.mood"),
        ("jingle@1.toml", GOOD.replace("version = 1", "version = 0"), r"version"),
        ("jingle@1.toml", b"\xff\xfe\x00", r"malformed TOML"),
    ],
)
def test_bad_template_files_are_rejected(
    tmp_path: Path, name: str, text: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        write_template(tmp_path, name, text)
    with pytest.raises(InvalidRequestError, match=message):
        load_templates(tmp_path)


def test_template_defaults_are_canonicalised(tmp_path: Path) -> None:
    extra = (
        "[defaults]\ninstruments = ['Grand Piano', 'sax', 'piano', 'string quartet']\n"
        "meter = ' 6 / 8 '\nmood = ' Happy'\nstructure = ['Intro', 'outro']\n"
    )
    write_template(tmp_path, "jingle@1.toml", GOOD + extra)
    (tpl,) = load_templates(tmp_path)
    assert tpl.defaults == {
        "instruments": ["piano", "saxophone", "violin", "viola", "cello"],
        "meter": "6/8",
        "mood": "happy",
        "structure": ["intro", "outro"],
    }
