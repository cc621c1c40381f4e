"""A request's uploaded inputs (MIDI melody, reference audio): upload keys, loading, analysis.

The SDK analyses local files before anything is uploaded or started (bad input costs nothing);
`normalize_controls` loads the same objects from the store and analyses them again, so a
workflow started by any client is checked the same way. Objects are keyed by content hash:
uploading the same file twice stores it once.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from activities.controls.midi import MAX_MIDI_BYTES, parse_midi
from activities.controls.normalize import ControlInputs
from activities.controls.reference import MAX_REFERENCE_BYTES, analyse_reference
from infra.store import ObjectStore, make_uri
from schemas.errors import InvalidRequestError
from schemas.request import GenerationRequest

MIDI_CONTENT_TYPE = "audio/midi"


def input_key(kind: str, data: bytes, suffix: str) -> str:
    """Object key of an uploaded input: kind + content hash (+ the file's suffix)."""
    return f"{kind}/{hashlib.sha256(data).hexdigest()}{suffix.lower()[:10]}"


def input_uri(bucket: str, kind: str, path: Path) -> str:
    """The URI a local file will have once uploaded (known before uploading)."""
    return make_uri(bucket, input_key(kind, path.read_bytes(), path.suffix))


def _check_size(path: Path, limit: int, what: str) -> None:
    size = path.stat().st_size
    if size > limit:
        raise InvalidRequestError(f"{what} is {size / 2**20:.1f} MiB; the limit is "
                                  f"{limit / 2**20:.0f} MiB")  # fmt: skip


def analyse_local_inputs(
    midi: Path | None, reference: Path | None, bucket: str
) -> tuple[dict[str, str], ControlInputs]:
    """Read and analyse local input files; returns the request fields (URIs) and the inputs.

    Raises:
        InvalidRequestError: a file is missing, too big, corrupt, silent or not audio/MIDI.
    """
    fields: dict[str, str] = {}
    melody = summary = None
    for path in (midi, reference):
        if path is not None and not path.is_file():
            raise InvalidRequestError(f"no such file: {path}")
    if midi is not None:
        _check_size(midi, MAX_MIDI_BYTES, f"MIDI file {midi.name}")
        fields["midi"] = input_uri(bucket, "midi", midi)
        melody = parse_midi(midi.read_bytes())
    if reference is not None:
        _check_size(reference, MAX_REFERENCE_BYTES, f"reference file {reference.name}")
        fields["reference"] = input_uri(bucket, "reference", reference)
        summary = analyse_reference(reference, fields["reference"])
    return fields, ControlInputs(melody=melody, reference=summary)


def upload_local_inputs(store: ObjectStore, midi: Path | None, reference: Path | None) -> None:
    """Upload input files under their content-hash keys (a no-op when already there)."""
    bucket = store.settings.inputs_bucket
    binary = "application/octet-stream"
    items = (("midi", midi, MIDI_CONTENT_TYPE), ("reference", reference, binary))
    for kind, path, content_type in items:
        if path is None:
            continue
        uri = input_uri(bucket, kind, path)
        if not store.exists(uri):
            store.put_file(bucket, input_key(kind, path.read_bytes(), path.suffix), path,
                           content_type)  # fmt: skip


def load_stored_inputs(request: GenerationRequest, store: ObjectStore) -> ControlInputs:
    """Load and analyse the inputs a validated request names (blocking; run in a thread).

    Raises:
        InvalidRequestError: an input is missing, too big or not usable.
    """
    melody = summary = None
    for uri, limit in ((request.midi, MAX_MIDI_BYTES), (request.reference, MAX_REFERENCE_BYTES)):
        if uri is None:
            continue
        size = store.size(uri)
        if size is None:
            raise InvalidRequestError(f"input {uri} does not exist (upload it first)")
        if size > limit:
            raise InvalidRequestError(f"input {uri} is {size / 2**20:.1f} MiB; the limit is "
                                      f"{limit / 2**20:.0f} MiB")  # fmt: skip
    if request.midi is not None:
        melody = parse_midi(store.get_bytes(request.midi))
    if request.reference is not None:
        with tempfile.TemporaryDirectory(prefix="tunesmith-ref-") as tmp:
            suffix = Path(request.reference).suffix[:10]
            path = store.download(request.reference, Path(tmp) / f"reference{suffix}")
            summary = analyse_reference(path, request.reference)
    return ControlInputs(melody=melody, reference=summary)
