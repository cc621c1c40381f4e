"""Prompt templates: versioned, reviewed starting points such as "podcast-intro" or "lofi-loop".

A template is a TOML file in `activities/controls/templates/`, named `<id>@<version>.toml`
(the file's own `id` and `version` must agree with its name). Old versions stay next to new
ones so a request naming `podcast-intro@1` renders the same prompt forever; a bare id means
the latest version. File layout::

    id = "podcast-intro"
    version = 2
    title = "Podcast intro"
    description = "A short branded intro bed."
    prompt = "Upbeat intro music for the {brand} podcast, {mood} and inviting"

    [variables.brand]
    description = "Show name"            # no default: required

    [variables.mood]
    description = "Overall feel"
    default = "warm"

    [defaults]                           # any of the request controls below
    duration_s = 15
    instruments = ["electric-piano", "bass", "drums"]
    mood = "{mood}"                      # mood alone may use the template's variables

Every file is validated when loaded: unknown keys, placeholders that are not declared
variables (and declared variables the prompt never uses), and invalid defaults are errors that
name the file. Placeholders are plain `{name}`; `{{` and `}}` are literal braces. Defaults use
the request's own vocabulary (schemas.music): instruments or families, a meter such as "6/8",
a mood from MOODS, structure sections from STRUCTURE_SECTIONS, a product from Product. A
templated mood is checked when rendered, so `mood=mysterious` is refused with the known moods.
"""

from __future__ import annotations

import functools
import re
import string
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.errors import InvalidRequestError
from schemas.music import MOODS, expand_instruments, normalize_structure, parse_key, parse_meter
from schemas.request import MAX_TEMPO_BPM, MIN_TEMPO_BPM, TIER_MAX_DURATION_S, Product

TEMPLATE_DIR = Path(__file__).with_name("templates")
MAX_VARIABLE_CHARS = 200
MAX_PROMPT_CHARS = 2000  # GenerationRequest.prompt's limit
TEMPLATE_PRODUCTS = tuple(p.value for p in Product)

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_VAR_RE = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
_FILE_RE = re.compile(r"^(?P<id>[^@]+)@(?P<version>[0-9]+)\.toml$")
# Control characters (newlines and tabs included) become spaces in variable values.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class TemplateVariable(BaseModel):
    """A `{placeholder}` of a template: required unless it has a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Annotated[str, Field(min_length=1, max_length=500)]
    default: Annotated[str, Field(max_length=MAX_VARIABLE_CHARS)] | None = None

    @property
    def required(self) -> bool:
        return self.default is None


class TemplateDefaults(BaseModel):
    """Request controls a template suggests; the request's own values win over these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    duration_s: Annotated[float, Field(gt=0, le=max(TIER_MAX_DURATION_S.values()))] | None = None
    tempo_bpm: Annotated[float, Field(ge=MIN_TEMPO_BPM, le=MAX_TEMPO_BPM)] | None = None
    key: str | None = None
    meter: str | None = None
    instruments: Annotated[list[str], Field(min_length=1, max_length=16)] | None = None
    mood: Annotated[str, Field(min_length=1, max_length=MAX_VARIABLE_CHARS)] | None = None
    energy: Annotated[float, Field(ge=0, le=1)] | None = None
    product: str | None = None
    structure: Annotated[list[str], Field(max_length=16)] | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None:
            parse_key(v)
        return v

    @field_validator("meter")
    @classmethod
    def _meter(cls, v: str | None) -> str | None:
        if v is None:
            return v
        num, den = parse_meter(v)
        return f"{num}/{den}"

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else expand_instruments(v)  # families expand

    @field_validator("product")
    @classmethod
    def _product(cls, v: str | None) -> str | None:
        if v is not None and v not in TEMPLATE_PRODUCTS:
            raise ValueError(f"product {v!r} is not one of {', '.join(TEMPLATE_PRODUCTS)}")
        return v

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return normalize_structure(v)

    @field_validator("mood")
    @classmethod
    def _mood(cls, v: str | None) -> str | None:
        # A mood with {placeholders} is checked when rendered (render_template).
        if v is None or "{" in v:
            return v
        return _check_mood(v)


class PromptTemplate(BaseModel):
    """One version of a prompt template, validated (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    id: str
    version: int
    title: str
    description: str
    prompt: str
    variables: dict[str, TemplateVariable]
    defaults: dict[str, Any]  # validated TemplateDefaults fields that the file sets

    @property
    def ref(self) -> str:
        """`id@version`: what provenance records and what `get_template` accepts."""
        return f"{self.id}@{self.version}"

    @property
    def required_variables(self) -> list[str]:
        return [name for name, var in self.variables.items() if var.required]


class RenderedTemplate(BaseModel):
    """A template with its variables filled in: the prompt and the controls it suggests."""

    model_config = ConfigDict(frozen=True)

    template_id: str
    version: int
    prompt: str
    defaults: dict[str, Any]
    variables: dict[str, str]  # every variable's value as used (given or default)


class _TemplateFile(BaseModel):
    """The raw shape of a template file (strict: unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    version: Annotated[int, Field(ge=1)]
    title: Annotated[str, Field(min_length=1, max_length=100)]
    description: Annotated[str, Field(min_length=1, max_length=1000)]
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
    variables: dict[str, TemplateVariable] = Field(default_factory=dict)
    defaults: TemplateDefaults = Field(default_factory=TemplateDefaults)


def load_templates(directory: Path) -> list[PromptTemplate]:
    """Load and validate every `*.toml` template in `directory`, sorted by (id, version).

    Raises:
        InvalidRequestError: a file is malformed or invalid (the message names the file).
    """
    return sorted(
        (_load_file(path) for path in sorted(directory.glob("*.toml"))),
        key=lambda t: (t.id, t.version),
    )


def list_templates(directory: Path | None = None) -> list[PromptTemplate]:
    """The latest version of each template (the bundled ones unless `directory` is given)."""
    return [versions[max(versions)] for versions in _index(directory).values()]


def get_template(ref: str, directory: Path | None = None) -> PromptTemplate:
    """The template `ref` names: `id` (latest version) or `id@version`.

    Raises:
        InvalidRequestError: unknown id or version (the message lists what exists).
    """
    index = _index(directory)
    template_id, _, version_text = ref.strip().lower().partition("@")
    versions = index.get(template_id)
    if versions is None:
        known = ", ".join(index) or "none"
        raise InvalidRequestError(f"unknown template {ref!r}; known templates: {known}")
    if not version_text:
        return versions[max(versions)]
    if not (version_text.isascii() and version_text.isdigit()) or int(version_text) not in versions:
        known = ", ".join(f"{template_id}@{v}" for v in sorted(versions))
        raise InvalidRequestError(f"unknown template version {ref!r}; known versions: {known}")
    return versions[int(version_text)]


def render_template(tpl: PromptTemplate, variables: dict[str, str]) -> RenderedTemplate:
    """Fill `tpl`'s placeholders from `variables` (defaults for those not given).

    Values are stripped, control characters become spaces, and empty values count as not
    given. Values are inserted as text, never re-read as placeholders.

    Raises:
        InvalidRequestError: unknown or missing required variables, over-long values, or a
            prompt longer than a request allows.
    """
    problems: list[str] = []
    unknown = sorted(set(variables) - set(tpl.variables))
    if unknown:
        problems.append(
            f"template {tpl.ref} has no variable(s) {', '.join(unknown)}; "
            f"its variables are: {', '.join(tpl.variables) or 'none'}"
        )
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, var in tpl.variables.items():
        raw = variables.get(name)
        value = " ".join(_CONTROL_RE.sub(" ", raw).split()) if isinstance(raw, str) else ""
        if raw is not None and not isinstance(raw, str):
            problems.append(f"template variable {name} must be text")
        elif len(value) > MAX_VARIABLE_CHARS:
            problems.append(
                f"template variable {name} is {len(value)} characters; "
                f"the limit is {MAX_VARIABLE_CHARS}"
            )
        if not value:
            if var.default is None:
                missing.append(name)
                continue
            value = var.default
        values[name] = value
    if missing:
        problems.append(f"template {tpl.ref} needs variable(s): {', '.join(missing)}")
    if problems:
        raise InvalidRequestError("; ".join(problems), problems=problems)

    prompt = tpl.prompt.format_map(values)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequestError(
            f"template {tpl.ref} renders a {len(prompt)}-character prompt; "
            f"the limit is {MAX_PROMPT_CHARS}"
        )
    defaults = {k: list(v) if isinstance(v, list) else v for k, v in tpl.defaults.items()}
    if "mood" in defaults:
        try:
            defaults["mood"] = _check_mood(str(defaults["mood"]).format_map(values))
        except ValueError as exc:
            raise InvalidRequestError(f"template {tpl.ref}: {exc}") from None
    return RenderedTemplate(
        template_id=tpl.id, version=tpl.version, prompt=prompt, defaults=defaults, variables=values
    )


def _check_mood(text: str) -> str:
    mood = text.strip().lower()
    if mood not in MOODS:
        raise ValueError(f"unknown mood {text!r}; known moods: {', '.join(MOODS)}")
    return mood


@functools.cache
def _bundled_index() -> dict[str, dict[int, PromptTemplate]]:
    return _build_index(load_templates(TEMPLATE_DIR))


def _index(directory: Path | None) -> dict[str, dict[int, PromptTemplate]]:
    if directory is None:
        return _bundled_index()
    return _build_index(load_templates(directory))


def _build_index(templates: list[PromptTemplate]) -> dict[str, dict[int, PromptTemplate]]:
    index: dict[str, dict[int, PromptTemplate]] = {}
    for tpl in templates:  # already sorted by (id, version)
        index.setdefault(tpl.id, {})[tpl.version] = tpl
    return index


def _load_file(path: Path) -> PromptTemplate:
    def fail(problem: str) -> InvalidRequestError:
        return InvalidRequestError(f"template file {path.name}: {problem}")

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"malformed TOML: {exc}") from None
    try:
        parsed = _TemplateFile.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: "
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        ]
        raise fail("; ".join(problems)) from None

    m = _FILE_RE.match(path.name)
    if not _ID_RE.match(parsed.id):
        raise fail(f"id {parsed.id!r} must be lowercase letters, digits and dashes")
    if not m or m.group("id") != parsed.id or int(m.group("version")) != parsed.version:
        raise fail(f"file must be named {parsed.id}@{parsed.version}.toml (its id and version)")
    for name in parsed.variables:
        if not _VAR_RE.match(name):
            raise fail(f"variable name {name!r} must be lowercase letters, digits, underscores")

    used = _placeholders(parsed.prompt, fail, "prompt")
    if parsed.defaults.mood is not None:
        used |= _placeholders(parsed.defaults.mood, fail, "defaults.mood")
    undeclared = sorted(used - set(parsed.variables))
    if undeclared:
        raise fail(f"placeholder(s) {', '.join(undeclared)} are not declared under [variables]")
    unused = sorted(set(parsed.variables) - used)
    if unused:
        raise fail(f"variable(s) {', '.join(unused)} are declared but never used")
    mood = parsed.defaults.mood
    if mood is not None and "{" in mood:
        # The mood a request gets without naming one must be valid too.
        mood_vars = _placeholders(mood, fail, "defaults.mood")
        if all(parsed.variables[v].default is not None for v in mood_vars):
            try:
                _check_mood(mood.format_map({v: parsed.variables[v].default for v in mood_vars}))
            except ValueError as exc:
                raise fail(f"defaults.mood: {exc}") from None

    return PromptTemplate(
        id=parsed.id,
        version=parsed.version,
        title=parsed.title,
        description=parsed.description,
        prompt=parsed.prompt,
        variables=parsed.variables,
        defaults=parsed.defaults.model_dump(exclude_none=True),
    )


def _placeholders(text: str, fail: Callable[[str], InvalidRequestError], where: str) -> set[str]:
    """Names of the `{name}` placeholders in `text`; anything fancier is a file error."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text)]
    except ValueError as exc:  # unbalanced braces
        raise fail(f"{where}: {exc} (write {{{{ and }}}} for literal braces)") from None
    names: set[str] = set()
    for name, spec, conv in fields:
        if name is None:
            continue  # literal text
        if spec or conv or not _VAR_RE.match(name):
            raise fail(f"{where}: placeholder {{{name}}} must be a plain {{variable_name}}")
        names.add(name)
    return names
