"""Delivery profiles: where the audio is going decides its loudness, peak ceiling and rate."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.request import DeliveryProfileName


@dataclass(frozen=True)
class DeliveryProfile:
    name: DeliveryProfileName
    target_lufs: float
    true_peak_dbtp: float
    sample_rate: int
    description: str


PROFILES: dict[str, DeliveryProfile] = {
    p.name: p
    for p in (
        DeliveryProfile("streaming", -14.0, -1.0, 44100, "Spotify/YouTube-style normalization"),
        DeliveryProfile("apple", -16.0, -1.0, 44100, "Apple Music / Sound Check"),
        DeliveryProfile("podcast", -16.0, -1.0, 44100, "podcast beds and intros (AES TD1004)"),
        DeliveryProfile("broadcast", -23.0, -1.0, 48000, "EBU R128 broadcast, 48 kHz"),
    )
}
