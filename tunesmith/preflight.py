"""The SDK's pre-flight: refuse a bad request on the client, before anything is uploaded or
started, with the same pure functions the `normalize_controls` activity uses.

It depends on nothing configured on workers: which model a tier means, what a model's card
allows, experiments and every other worker setting are decided once, by `normalize_controls`;
a request only the workers can refuse (e.g. a model this deployment does not serve) fails there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.controls.inputs import analyse_local_inputs, load_stored_inputs
from activities.controls.normalize import ControlInputs, check_controls
from infra.settings import Settings, get_settings
from infra.store import ObjectStore
from schemas.errors import InvalidRequestError
from schemas.request import GenerationRequest, validate_request


@dataclass(frozen=True)
class CheckedRequest:
    """A request checked on this machine, ready to start.

    `request` names the local input files by the URIs they get once uploaded.
    """

    request: GenerationRequest
    midi: Path | None = None
    reference: Path | None = None


def check_request(
    request: GenerationRequest | dict[str, Any],
    *,
    midi: Path | str | None = None,
    reference: Path | str | None = None,
    settings: Settings | None = None,
    store: ObjectStore | None = None,
) -> CheckedRequest:
    """Check a request and its input files (blocking: file analysis; run it in a thread).

    Checks the schema, that local files exist, fit the size limits and can be read (MIDI
    parsed, reference audio decoded, not silent), inputs the request names by URI (read from
    the store, made from `settings` when not given), the template, and contradictions between
    the controls (e.g. a melody longer than the duration). Touches the network only for inputs
    named by URI.

    Raises:
        InvalidRequestError: the request or an input file is invalid (one line per problem).
    """
    settings = settings or (store.settings if store is not None else get_settings())
    req = validate_request(request)
    midi_path = Path(midi) if midi is not None else None
    ref_path = Path(reference) if reference is not None else None
    if midi_path is not None and req.midi is not None:
        raise InvalidRequestError("give the MIDI melody as a file or as a URI, not both")
    if ref_path is not None and req.reference is not None:
        raise InvalidRequestError("give the reference as a file or as a URI, not both")
    fields, local = analyse_local_inputs(midi_path, ref_path, settings.inputs_bucket)
    stored = ControlInputs()
    if req.midi is not None or req.reference is not None:
        stored = load_stored_inputs(req, store or ObjectStore(settings))
    # The URIs are made by input_uri from the files just read: valid by construction.
    req = req.model_copy(update=fields)
    inputs = ControlInputs(melody=local.melody or stored.melody,
                           reference=local.reference or stored.reference)  # fmt: skip
    return CheckedRequest(check_controls(req, inputs), midi_path, ref_path)
