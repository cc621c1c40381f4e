"""`tunesmith codec ...`: payload encryption keys and the codec server for the Web UI."""

from __future__ import annotations

from typing import Annotated

import typer

from infra.codec import EncryptionCodec, PayloadKeyError, PayloadKeys, new_key_spec
from infra.settings import get_settings
from tunesmith.cli_common import console, fail

codec_app = typer.Typer(help="Encrypted Temporal payloads.", no_args_is_help=True)


@codec_app.command("new-key")
def codec_new_key(
    key_id: Annotated[str, typer.Argument(help="a name for the key, e.g. 2026-12")],
) -> None:
    """Print a fresh AES-256 key entry for TUNESMITH_PAYLOAD_KEYS (put it first to rotate)."""
    try:
        console.print(new_key_spec(key_id))
    except PayloadKeyError as exc:
        raise fail(str(exc)) from None


@codec_app.command("serve")
def codec_serve(
    port: Annotated[int, typer.Option(min=0, max=65535, help="0: any free port")] = 8081,
    origin: Annotated[
        str | None, typer.Option(help="the Web UI origin allowed by CORS (default: the UI URL)")
    ] = None,
) -> None:
    """Serve /encode and /decode on 127.0.0.1 for callers holding TUNESMITH_CODEC_SERVER_TOKEN."""
    from tunesmith.codec_server import make_codec_server

    settings = get_settings()
    if not settings.payload_keys:
        raise fail("TUNESMITH_PAYLOAD_KEYS is not set: there is nothing to decrypt")
    if not settings.codec_server_token:
        raise fail("set TUNESMITH_CODEC_SERVER_TOKEN: the codec server answers no one without it")
    try:
        codec = EncryptionCodec(PayloadKeys.parse(settings.payload_keys))
    except PayloadKeyError as exc:
        raise fail(str(exc)) from None
    server = make_codec_server(
        codec, token=settings.codec_server_token, origin=origin or settings.ui_url, port=port
    )
    url = f"http://127.0.0.1:{server.server_address[1]}"
    console.print(f"codec server on {url} (Web UI codec endpoint: {url}/<token>)", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
