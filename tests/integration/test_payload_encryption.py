"""With TUNESMITH_PAYLOAD_KEYS set, a job runs end to end, its raw history holds ciphertext
only, the codec server decodes it for the token holder, and a wrong key is a clear error."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter

from infra.codec import EncryptionCodec, PayloadKeys, new_key_spec
from infra.stack import LocalStack
from schemas.jobs import Stage
from tests.conftest import make_settings, private_home, private_stack
from tests.integration.helpers import short_request
from tunesmith import Client
from tunesmith.codec_server import make_codec_server

pytestmark = pytest.mark.integration

KEYS = f"{new_key_spec('2026-12')},{new_key_spec('2026-11')}"
SECRET_PROMPT = "confidential launch trailer for project nightingale"


@pytest.fixture(scope="module")
def encrypted_stack() -> Iterator[LocalStack]:
    settings = make_settings(private_home("tunesmith-encrypted-"), payload_keys=KEYS,
                             ui_codec_endpoint="http://127.0.0.1:1/codec")  # fmt: skip
    with private_stack(settings, {"TUNESMITH_PAYLOAD_KEYS": KEYS}) as local:
        yield local


async def test_histories_hold_ciphertext_and_the_codec_server_decodes_them(
    encrypted_stack: LocalStack,
) -> None:
    s = encrypted_stack.settings
    client = await Client.connect(s)
    request = short_request(duration_s=5.0, seed=17).model_copy(update={"prompt": SECRET_PROMPT})
    handle = await client.submit(request)
    result = await handle.result()
    assert result.stage is Stage.PUBLISHED

    # The server's view: no prompt anywhere in the history, every payload sealed.
    raw = await TemporalClient.connect(s.temporal_target, namespace=s.temporal_namespace,
                                       data_converter=pydantic_data_converter)  # fmt: skip
    history = await raw.get_workflow_handle(handle.job_id).fetch_history()
    assert SECRET_PROMPT.encode() not in history.to_json().encode()
    assert b"nightingale" not in b"".join(e.SerializeToString() for e in history.events)
    started = next(e for e in history.events
                   if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)  # fmt: skip
    sealed = list(started.workflow_execution_started_event_attributes.input.payloads)
    assert all(p.metadata["encoding"] == b"binary/encrypted" for p in sealed)
    assert {p.metadata["encryption-key-id"] for p in sealed} == {b"2026-12"}

    # The Web UI's view, through the codec server, for whoever holds the token.
    server = make_codec_server(EncryptionCodec(PayloadKeys.parse(KEYS)), token="ui-token",
                               origin=s.ui_url, port=0)  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ui-token/decode"
        decoded = await asyncio.to_thread(_decode, url, sealed)
        assert SECRET_PROMPT in decoded[0].data.decode()
    finally:
        server.shutdown()
        server.server_close()

    # The dev server's Web UI was started pointing at the configured codec endpoint.
    argv = json.loads(encrypted_stack.process("temporal").pid_file.read_text())["argv"]
    assert argv[argv.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:1/codec"


def _decode(url: str, sealed: list[Payload]) -> list[Payload]:
    body = json_format.MessageToJson(Payloads(payloads=sealed)).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"),
                                timeout=10) as resp:  # fmt: skip
        return list(json_format.ParseDict(json.loads(resp.read()), Payloads()).payloads)


async def test_a_client_with_another_key_gets_a_clear_error(encrypted_stack: LocalStack) -> None:
    s = encrypted_stack.settings
    client = await Client.connect(s)
    handle = await client.submit(short_request(duration_s=5.0, seed=18))
    await handle.result()
    stranger = await Client.connect(s.model_copy(update={"payload_keys": new_key_spec("2026-12")}))
    with pytest.raises(Exception) as caught:
        await stranger.get_handle(handle.job_id).status()
    chain: list[str] = []
    exc: BaseException | None = caught.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("does not decrypt with key '2026-12'" in text for text in chain), chain
