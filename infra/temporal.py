"""One Temporal client factory (pydantic data converter, optional payload encryption, TLS/API key
from settings) for the SDK, the CLI and the workers."""

from __future__ import annotations

import dataclasses

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from infra.codec import EncryptionCodec, PayloadKeys
from infra.settings import Settings
from schemas.names import SEARCH_ATTRIBUTES


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted when `TUNESMITH_PAYLOAD_KEYS` is set."""
    if not settings.payload_keys:
        return pydantic_data_converter
    codec = EncryptionCodec(PayloadKeys.parse(settings.payload_keys))
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def connect_temporal(settings: Settings) -> Client:
    """Connect to the Temporal frontend named by settings (the local dev server by default)."""
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    elif settings.temporal_tls or settings.temporal_api_key:
        tls = True
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        tls=tls,
        api_key=settings.temporal_api_key,
    )


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register tunesmith's Keyword search attributes on a namespace; returns those added.

    The dev server registers them at start; a real cluster needs this once (`tunesmith up`
    does it when `TUNESMITH_TEMPORAL_ADDRESS` points at one).
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = [n for n in SEARCH_ATTRIBUTES if n not in existing.custom_attributes]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={n: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for n in missing},
            )
        )
    return missing


async def set_retention(client: Client, namespace: str, days: int) -> None:
    """Keep closed workflow histories for `days`: an idempotency key maps to its job for as
    long as the history exists (the dev server's default is one day)."""
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=namespace,
            config=NamespaceConfig(
                workflow_execution_retention_ttl=Duration(seconds=days * 24 * 3600)
            ),
        )
    )
