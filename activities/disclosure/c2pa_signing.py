"""C2PA content credentials for published audio (WAV, MP3, FLAC) via c2pa-python.

Every published file gets a manifest that says it was made by a trained model: a
`c2pa.actions.v2` assertion with `c2pa.created`, digitalSourceType `trainedAlgorithmicMedia` and
the model as software agent, plus an `org.tunesmith.generation` assertion (job id, model id and
version, anything extra the caller adds).

Signing identity. `ensure_signing_identity(dir)` creates, once, a local ES256 (P-256) chain:

    dir/root-ca.pem      self-signed root CA (the trust anchor for `verify_file`)
    dir/root-ca.key      its key (0600) — only used to re-issue the signer certificate
    dir/signer.pem       end-entity cert (digitalSignature, EKU emailProtection) + root, PEM
    dir/signer.key       end-entity private key, PKCS#8 PEM (0600)

Files signed with it validate ("Valid"), and are "Trusted" wherever `root-ca.pem` is given as
a trust anchor. To use a real identity, obtain a certificate from a CA on the C2PA trust list
(end-entity cert with digitalSignature key usage and an emailProtection or documentSigning EKU),
then build `SigningIdentity.from_files(cert_chain=..., private_key=..., alg="es256",
tsa_url=...)` — cert_chain is the PEM chain leaf first, without the root; the key is PKCS#8 PEM.
Set a timestamp authority URL in production so signatures outlive the certificate.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.tunesmith.generation"
CLAIM_GENERATOR = "tunesmith"
SUPPORTED_FORMATS = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac"}

IDENTITY_SUBDIR = "c2pa"  # the local identity lives in <TUNESMITH_HOME>/c2pa
ROOT_CERT = "root-ca.pem"
ROOT_KEY = "root-ca.key"
SIGNER_CERT = "signer.pem"
SIGNER_KEY = "signer.key"
_ROOT_DAYS = 3650
_SIGNER_DAYS = 397  # public-CA leaf lifetime; re-issued automatically when it runs out
_RENEW_BEFORE = dt.timedelta(days=7)
_TRUST_CODES = {"signingCredential.untrusted"}


class C2paSigningError(RuntimeError):
    """Signing or verification could not be done (not: the file failed validation)."""


class UnsupportedFormatError(C2paSigningError, ValueError):
    """A file type we do not sign (anything but .wav, .mp3, .flac)."""


@dataclass(frozen=True)
class SigningIdentity:
    """A signing certificate chain (leaf first, PEM) and its private key (PKCS#8 PEM)."""

    cert_chain: Path
    private_key: Path
    alg: str = "es256"
    tsa_url: str | None = None
    trust_anchors: Path | None = None  # PEM roots that make our own files "Trusted"

    @classmethod
    def from_files(
        cls,
        cert_chain: Path,
        private_key: Path,
        *,
        alg: str = "es256",
        tsa_url: str | None = None,
        trust_anchors: Path | None = None,
    ) -> SigningIdentity:
        """A real identity from files. Raises C2paSigningError when a file is missing."""
        for path in (cert_chain, private_key):
            if not Path(path).is_file():
                raise C2paSigningError(f"signing identity file not found: {path}")
        return cls(Path(cert_chain), Path(private_key), alg, tsa_url, trust_anchors)

    def signer(self) -> c2pa.Signer:
        try:
            info = c2pa.C2paSignerInfo(
                self.alg,
                self.cert_chain.read_bytes(),
                self.private_key.read_bytes(),
                self.tsa_url,
            )
            return c2pa.Signer.from_info(info)
        except (OSError, c2pa.C2paError) as exc:
            raise C2paSigningError(f"cannot load the signing identity: {exc}") from exc


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue_signer(
    directory: Path,
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    organization: str,
) -> None:
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=_SIGNER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        # C2PA requires an EKU on signing certs; emailProtection is one it accepts.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    _write_private(directory / SIGNER_KEY, _pem_key(key))
    chain = cert.public_bytes(serialization.Encoding.PEM) + root.public_bytes(
        serialization.Encoding.PEM
    )
    (directory / SIGNER_CERT).write_bytes(chain)


def ensure_signing_identity(
    directory: Path,
    *,
    common_name: str = "Tunesmith Publisher",
    organization: str = "Tunesmith (local, untrusted)",
) -> SigningIdentity:
    """Load the local signing identity in `directory`, creating it on first use.

    Idempotent; re-issues the signer certificate (same root) when it is about to expire.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    root_pem, root_key_pem = directory / ROOT_CERT, directory / ROOT_KEY
    if root_pem.is_file() and root_key_pem.is_file():
        root = x509.load_pem_x509_certificate(root_pem.read_bytes())
        loaded = serialization.load_pem_private_key(root_key_pem.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise C2paSigningError(f"{root_key_pem} is not an EC private key")
        root_key = loaded
    else:
        now = dt.datetime.now(dt.UTC)
        root_key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(f"{organization} Root CA", organization)
        root = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=_ROOT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(sign=False, ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
            .sign(root_key, hashes.SHA256())
        )
        _write_private(root_key_pem, _pem_key(root_key))
        root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
        (directory / SIGNER_CERT).unlink(missing_ok=True)  # a new root invalidates the leaf

    signer_pem = directory / SIGNER_CERT
    renew = not signer_pem.is_file() or not (directory / SIGNER_KEY).is_file()
    if not renew:
        leaf = x509.load_pem_x509_certificate(signer_pem.read_bytes())
        renew = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC) < _RENEW_BEFORE
    if renew:
        _issue_signer(directory, root, root_key, common_name, organization)
    return SigningIdentity(signer_pem, directory / SIGNER_KEY, trust_anchors=root_pem)


def _mime_type(path: Path) -> str:
    mime = SUPPORTED_FORMATS.get(path.suffix.lower())
    if mime is None:
        supported = ", ".join(sorted(SUPPORTED_FORMATS))
        raise UnsupportedFormatError(
            f"{path.name}: unsupported format {path.suffix or '(no extension)'!r}; "
            f"C2PA signing supports {supported}"
        )
    return mime


def build_manifest(
    *,
    title: str,
    job_id: str,
    model_id: str,
    model_version: str,
    assertions: dict[str, Any] | None = None,
    generator_version: str = "0",
) -> dict[str, Any]:
    """The manifest definition: AI-generation action + the tunesmith generation assertion."""
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": generator_version}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": model_id, "version": model_version},
                        }
                    ]
                },
            },
            {
                "label": GENERATION_LABEL,
                "data": {
                    "job_id": job_id,
                    "model": {"id": model_id, "version": model_version},
                    "ai_generated": True,
                    **(assertions or {}),
                },
            },
        ],
    }


def sign_file(
    src: Path,
    dst: Path,
    *,
    identity: SigningIdentity,
    title: str,
    job_id: str,
    model_id: str,
    model_version: str,
    assertions: dict[str, Any] | None = None,
    generator_version: str = "0",
) -> None:
    """Write `dst`: `src` with an embedded, signed C2PA manifest stating AI generation.

    `assertions` adds JSON-ready fields to the `org.tunesmith.generation` assertion (e.g. the
    watermark payload, provenance record sha256). `dst` must have the same extension as `src`.

    Raises:
        UnsupportedFormatError: not .wav/.mp3/.flac, or `dst` of another type.
        C2paSigningError: unreadable source, bad identity, or the SDK refused to sign.
    """
    src, dst = Path(src), Path(dst)
    mime = _mime_type(src)
    if _mime_type(dst) != mime:
        raise UnsupportedFormatError(f"{dst.name}: must have the same format as {src.name}")
    if not src.is_file():
        raise C2paSigningError(f"{src}: no such file")
    manifest = build_manifest(
        title=title,
        job_id=job_id,
        model_id=model_id,
        model_version=model_version,
        assertions=assertions,
        generator_version=generator_version,
    )
    signer = identity.signer()
    tmp = dst.with_name(f".{dst.name}.c2pa-tmp")
    try:
        with c2pa.Builder(manifest) as builder, open(src, "rb") as fin, open(tmp, "w+b") as fout:
            builder.sign(signer, mime, fin, fout)
        tmp.replace(dst)  # never leave a half-written published file
    except c2pa.C2paError as exc:
        raise C2paSigningError(f"{src.name}: C2PA signing failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
        signer.close()


@dataclass(frozen=True)
class VerificationResult:
    """What `verify_file` found. `valid`: a manifest is present and validates."""

    valid: bool
    has_manifest: bool
    state: str  # "Trusted" | "Valid" | "Invalid" | "NoManifest"
    trusted: bool = False  # chains to a given trust anchor (or the C2PA trust list)
    signer: str | None = None
    issuer: str | None = None
    ai_generated: bool = False
    model: dict[str, str] | None = None
    job_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)  # the active manifest, as JSON
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. signer not on a trust list


def _reader_context(trust_anchors: Path | None) -> c2pa.Context | None:
    if trust_anchors is None:
        return None
    try:
        pem = Path(trust_anchors).read_text()
    except OSError as exc:
        raise C2paSigningError(f"cannot read trust anchors {trust_anchors}: {exc}") from exc
    return c2pa.Context.from_dict({"trust": {"trust_anchors": pem}})


def verify_file(path: Path, *, trust_anchors: Path | None = None) -> VerificationResult:
    """Read and validate the C2PA manifest of `path`.

    A tampered file gives `valid=False` with the validation failures in `errors`; a file
    without a manifest gives `has_manifest=False`. `trust_anchors` (PEM) decides `trusted`.

    Raises:
        UnsupportedFormatError: not .wav/.mp3/.flac.
        C2paSigningError: the file is missing or unreadable.
    """
    path = Path(path)
    mime = _mime_type(path)
    if not path.is_file():
        raise C2paSigningError(f"{path}: no such file")
    context = _reader_context(trust_anchors)
    try:
        with open(path, "rb") as fh:
            reader = c2pa.Reader.try_create(mime, fh, context=context)
            if reader is None:
                return VerificationResult(
                    valid=False, has_manifest=False, state="NoManifest", errors=["no manifest"]
                )
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        # A manifest so broken it cannot be parsed is a failed validation, not a crash.
        return VerificationResult(
            valid=False, has_manifest=True, state="Invalid", errors=[f"unreadable manifest: {exc}"]
        )
    return _result(store)


def _result(store: dict[str, Any]) -> VerificationResult:
    state = str(store.get("validation_state") or "Invalid")
    active_label = store.get("active_manifest")
    manifest: dict[str, Any] = store.get("manifests", {}).get(active_label, {})
    results = store.get("validation_results", {}).get("activeManifest", {})
    errors: list[str] = []
    warnings: list[str] = []
    for item in results.get("failure", []):
        text = f"{item.get('code')}: {item.get('explanation', '')}".rstrip(": ")
        # An unknown signer is reported as a failure but leaves the state "Valid": the
        # signature and hashes hold, only trust is missing (`trusted` says which).
        (warnings if item.get("code") in _TRUST_CODES else errors).append(text)
    if not manifest:
        errors.append("no active manifest")
    ai_generated, model, job_id = False, None, None
    for assertion in manifest.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data", {})
        if label.startswith("c2pa.actions"):
            for action in data.get("actions", []):
                if action.get("digitalSourceType") == TRAINED_ALGORITHMIC_MEDIA:
                    ai_generated = True
                    agent = action.get("softwareAgent")
                    if isinstance(agent, dict) and model is None:
                        model = {"id": str(agent.get("name")), "version": str(agent.get("version"))}
        elif label == GENERATION_LABEL:
            job_id = data.get("job_id")
            if isinstance(data.get("model"), dict):
                model = {k: str(v) for k, v in data["model"].items()}
    signature = manifest.get("signature_info", {})
    valid = state in ("Valid", "Trusted") and not errors
    return VerificationResult(
        valid=valid,
        has_manifest=True,
        state=state,
        trusted=state == "Trusted",
        signer=signature.get("common_name"),
        issuer=signature.get("issuer"),
        ai_generated=ai_generated,
        model=model,
        job_id=job_id,
        claims=manifest,
        errors=errors,
        warnings=warnings,
    )
