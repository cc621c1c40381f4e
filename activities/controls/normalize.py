"""Request → ControlTokens. Pure and deterministic: one request always gives the same tokens.

Controls a request leaves open (None) are filled, first source wins:

- tempo: explicit > the MIDI file's tempo > the reference's detected tempo > template > 120.
- key: explicit > the melody's key > the reference's detected key > template > by mood
  (C major, or A minor for minor moods).
- meter: explicit > the MIDI file's time signature > template > 4/4.
- energy: explicit > template > mood > 0.6.
- duration: explicit > template > the melody plus one bar > 30 s (loops and layers: 8 bars).
- product, instruments, mood, structure: explicit > template > track, piano/bass/drums, none.

Loops and layers are a whole number of bars: round(duration / bar length), at least one bar;
their `duration_s` becomes exactly that many bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activities.controls.midi import (
    ParsedMelody,
    check_melody_fits,
    fit_melody,
    melody_chroma,
)
from activities.controls.templates import get_template, render_template
from activities.models.cards import ModelCard, get_card
from activities.models.settings import get_model_settings, resolve_model_id
from schemas.controls import ControlTokens, InstrumentToken, LayerToken, ReferenceSummary
from schemas.errors import InvalidRequestError
from schemas.music import GM_INSTRUMENTS, MOODS, key_name, parse_key, parse_meter
from schemas.request import (
    DEFAULT_LAYERS,
    LAYER_ENERGY,
    GenerationRequest,
    Product,
    validate_request,
)

DEFAULT_TEMPO_BPM = 120.0
DEFAULT_DURATION_S = 30.0
DEFAULT_LOOP_BARS = 8
DEFAULT_ENERGY = 0.6
DEFAULT_INSTRUMENTS = ("piano", "bass", "drums")
# Fields a template's [defaults] may set (all "open" fields of the request).
TEMPLATE_FIELDS = frozenset(
    {
        "duration_s",
        "tempo_bpm",
        "key",
        "meter",
        "instruments",
        "mood",
        "energy",
        "product",
        "structure",
    }
)


@dataclass(frozen=True)
class ControlInputs:
    """The request's uploaded inputs, already read and analysed (by the activity or the SDK)."""

    melody: ParsedMelody | None = None
    reference: ReferenceSummary | None = None


def _model_card(request: GenerationRequest) -> ModelCard:
    """The card of the model serving the request: its explicit model, else its tier's model."""
    model_id = resolve_model_id(get_model_settings(), tier=request.tier.value,
                                model_id=request.model)  # fmt: skip
    try:
        card = get_card(model_id)
    except KeyError:
        raise InvalidRequestError(
            f"unknown model {model_id!r}; see `tunesmith models list`"
        ) from None
    return card


def _same_scale(a_pc: int, a_mode: str, b_pc: int, b_mode: str) -> bool:
    """Whether two keys use the same notes (equal, or relative major/minor)."""

    def major_tonic(pc: int, mode: str) -> int:
        return (pc + 3) % 12 if mode == "minor" else pc

    return major_tonic(a_pc, a_mode) == major_tonic(b_pc, b_mode)


def _template_defaults(request: GenerationRequest) -> tuple[str, str | None, int | None, dict]:
    """(prompt, template id, template version, validated defaults) of the request."""
    if request.template is None:
        assert request.prompt is not None  # the request validator guarantees one of them
        return request.prompt, None, None, {}
    template = get_template(request.template)
    rendered = render_template(template, request.variables)
    unknown = set(rendered.defaults) - TEMPLATE_FIELDS
    if unknown:
        raise InvalidRequestError(
            f"template {template.id}@{template.version} sets unknown defaults {sorted(unknown)}"
        )
    try:  # the same validators as the request itself
        checked = GenerationRequest.model_validate({"prompt": "x", **rendered.defaults})
    except ValueError as exc:
        raise InvalidRequestError(
            f"template {template.id}@{template.version} has invalid defaults: {exc}"
        ) from None
    defaults = {k: getattr(checked, k) for k in rendered.defaults}
    prompt = rendered.prompt if request.prompt is None else f"{rendered.prompt}. {request.prompt}"
    return prompt[:2000], rendered.template_id, rendered.version, defaults


def normalize_request(
    data: dict[str, Any] | GenerationRequest, inputs: ControlInputs | None = None
) -> tuple[GenerationRequest, ControlTokens]:
    """Validate `data`, fill open controls (see the module docstring) and build ControlTokens
    for the model serving it (its explicit model, else the tier's model of this deployment).

    Raises:
        InvalidRequestError: the request is invalid or contradictory (one line per problem).
    """
    request, tokens = _normalize(data, inputs, _model_card)
    assert tokens is not None  # a card was given
    return request, tokens


def check_controls(
    data: dict[str, Any] | GenerationRequest, inputs: ControlInputs | None = None
) -> GenerationRequest:
    """Everything `normalize_request` checks that needs no deployment settings: the request,
    its template, its inputs against the other controls and contradictions between controls.

    The model (tier -> model, its card's limits, melody and stems support) is left to
    `normalize_request` on the workers; clients check with this before starting a job.

    Raises:
        InvalidRequestError: the request is invalid or contradictory (one line per problem).
    """
    return _normalize(data, inputs, None)[0]


def _normalize(
    data: dict[str, Any] | GenerationRequest,
    inputs: ControlInputs | None,
    model_card: Callable[[GenerationRequest], ModelCard] | None,
) -> tuple[GenerationRequest, ControlTokens | None]:
    """The normalization; without `model_card` the model's checks are skipped and no tokens
    are built."""
    request = validate_request(data)
    inputs = inputs or ControlInputs()
    if request.midi is not None and inputs.melody is None:
        raise InvalidRequestError("the request names a MIDI file but it was not loaded")
    if request.reference is not None and inputs.reference is None:
        raise InvalidRequestError("the request names reference audio but it was not loaded")
    prompt, template_id, template_version, tpl = _template_defaults(request)
    melody, ref = inputs.melody, inputs.reference
    filled_by_ref: list[str] = []

    def pick(name: str, *sources: Any) -> Any:
        for value in (getattr(request, name), *sources):
            if value is not None:
                return value
        return None

    product = Product(pick("product", tpl.get("product")) or Product.TRACK)
    mood = pick("mood", tpl.get("mood"))
    if request.layers is not None and product is not Product.LAYERS:
        raise InvalidRequestError(f"layers are only for product 'layers', not {product.value!r}")

    tempo = pick("tempo_bpm", melody.tempo_bpm if melody else None)
    if tempo is None and ref is not None:
        tempo = ref.tempo_bpm
        filled_by_ref.append("tempo_bpm")
    tempo = float(tempo or tpl.get("tempo_bpm") or DEFAULT_TEMPO_BPM)

    meter = pick("meter")
    if meter is not None:
        beats_per_bar, beat_unit = parse_meter(meter)
    elif melody is not None:
        beats_per_bar, beat_unit = melody.beats_per_bar, melody.beat_unit
    else:
        beats_per_bar, beat_unit = parse_meter(tpl.get("meter") or "4/4")
    bar_s = beats_per_bar * 4.0 / beat_unit * 60.0 / tempo

    if request.key is not None:
        tonic_pc, mode = parse_key(request.key)
    elif melody is not None:
        tonic_pc, mode = melody.tonic_pc, melody.mode
    elif ref is not None:
        tonic_pc, mode = parse_key(ref.key)
        filled_by_ref.append("key")
    elif tpl.get("key") is not None:
        tonic_pc, mode = parse_key(tpl["key"])
    else:
        mood_mode = MOODS[mood][1] if mood else "major"
        tonic_pc, mode = (9, "minor") if mood_mode == "minor" else (0, "major")

    notes, transpose = [], 0
    if melody is not None:
        if request.key is not None and not request.transpose_melody:
            if not _same_scale(melody.tonic_pc, melody.mode, tonic_pc, mode):
                raise InvalidRequestError(
                    f"contradictory controls: the MIDI melody is in "
                    f"{key_name(melody.tonic_pc, melody.mode)} ({melody.key_source}) but key is "
                    f"{key_name(tonic_pc, mode)}; set transpose_melody to move it, or leave key "
                    f"open to use the melody's key"
                )
            notes, transpose = list(melody.notes), 0
        else:
            notes, transpose = fit_melody(melody, tonic_pc=tonic_pc, mode=mode, transpose=True)

    duration = pick("duration_s", tpl.get("duration_s"))
    if product in (Product.LOOP, Product.LAYERS):
        bars = DEFAULT_LOOP_BARS if duration is None else max(1, round(duration / bar_s))
        duration = bars * bar_s
    else:
        if duration is None:
            duration = DEFAULT_DURATION_S
            if notes:  # the melody, then one bar to end on
                melody_bars = math.ceil(max(n.start_beat + n.duration_beats for n in notes)
                                        / (bar_s * tempo / 60.0) - 1e-9)  # fmt: skip
                duration = (melody_bars + 1) * bar_s
        bars = max(1, math.ceil(duration / bar_s - 1e-9))
    card = model_card(request) if model_card is not None else None
    if card is not None and duration > card.max_duration_s:
        raise InvalidRequestError(
            f"{duration:g} s ({bars} bars) is over {card.id}'s limit of {card.max_duration_s:g} s"
        )
    total_beats = duration * tempo / 60.0
    if notes:
        check_melody_fits(notes, total_beats, tempo_bpm=tempo)
        if card is not None and not card.supports("melody"):
            raise InvalidRequestError(
                f"model {card.id} cannot follow a MIDI melody; use a model whose card lists "
                "'melody' (tunesmith models list)"
            )
    if card is not None and product is Product.STEMS and not card.supports("stems"):
        raise InvalidRequestError(f"model {card.id} cannot render stems")
    if card is None:
        return request, None

    instruments = pick("instruments", tpl.get("instruments")) or list(DEFAULT_INSTRUMENTS)
    energy = pick("energy", tpl.get("energy"), MOODS[mood][0] if mood else None)
    layers: list[LayerToken] = []
    if product is Product.LAYERS:
        names = request.layers or list(DEFAULT_LAYERS)
        layers = [LayerToken(name=n, energy=LAYER_ENERGY[n]) for n in names]
    if ref is not None:
        ref = ref.model_copy(update={"filled": filled_by_ref})

    tokens = ControlTokens(
        prompt=prompt,
        duration_s=duration,
        tempo_bpm=tempo,
        tonic_pc=tonic_pc,
        mode=mode,
        key_name=key_name(tonic_pc, mode),
        beats_per_bar=beats_per_bar,
        beat_unit=beat_unit,
        bars=bars,
        instruments=[
            InstrumentToken(
                name=name,
                program=GM_INSTRUMENTS[name][0],
                is_drum=GM_INSTRUMENTS[name][1] == "drums",
                role=GM_INSTRUMENTS[name][1],
            )
            for name in instruments
        ],
        seed=request.seed,
        tier=request.tier.value,
        model_id=card.id,
        product=product.value,
        mood=mood,
        energy=float(energy if energy is not None else DEFAULT_ENERGY),
        structure=list(pick("structure", tpl.get("structure")) or []),
        melody=notes,
        melody_chroma=melody_chroma(notes, total_beats) if notes else [],
        melody_transpose=transpose,
        loop=product in (Product.LOOP, Product.LAYERS),
        layers=layers,
        template_id=template_id,
        template_version=template_version,
        reference=ref,
    )
    return request, tokens
