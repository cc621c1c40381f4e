"""One Temporal client factory (pydantic data converter, TLS/API key from settings) for the SDK,
the CLI and the workers."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter

from infra.settings import Settings


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
        data_converter=pydantic_data_converter,
        tls=tls,
        api_key=settings.temporal_api_key,
    )
