"""The product layer and product mastering: sections, loops, stems, layers, manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from activities.controls.normalize import normalize_request
from activities.disclosure.watermark import WATERMARK_SCHEME, detect, payload_for_job
from activities.evaluation.controls import seam_stats
from activities.inference.backend import Capabilities, UnsupportedControlsError
from activities.inference.draft import DraftBackend
from activities.inference.products import render_product, section_plan
from activities.postprocess.formats import AudioTags
from activities.postprocess.manifest import build_manifest
from activities.postprocess.pipeline import MasteringJob, master_files
from activities.postprocess.profiles import PROFILES
from schemas.controls import ControlTokens
from schemas.jobs import AudioRef, PartOutput

RATE = 44100


class ShortWindowDraft(DraftBackend):
    """The draft backend as a neural backend looks to the product layer: short windows, no
    native loops, no stems, no melody. The product layer must do the rest itself."""

    capabilities = Capabilities(max_window_s=8.0)


@pytest.fixture(scope="module")
def draft() -> DraftBackend:
    return DraftBackend()


@pytest.fixture(scope="module")
def short_window() -> ShortWindowDraft:
    return ShortWindowDraft()


def tokens(**request: object) -> ControlTokens:
    return normalize_request({"prompt": "test", **request})[1]


def test_section_plan_covers_the_track_in_whole_bars() -> None:
    t = tokens(duration_s=60.0, tempo_bpm=120.0)  # 30 bars of 2 s
    plan = section_plan(t, max_window_s=10.0)  # 4 bars + 1 overlap bar per window
    assert [bars for _, bars, _ in plan] == [4] * 7 + [2]
    assert [first for first, _, _ in plan] == list(range(0, 30, 4))
    assert plan[0][2] == "intro" and plan[-1][2] == "outro"
    with pytest.raises(UnsupportedControlsError, match="window"):
        section_plan(tokens(tempo_bpm=30.0, meter="16/4"), max_window_s=10.0)


def _max_jump_ratio(x: np.ndarray, at: list[int]) -> float:
    """Largest sample-to-sample jump at the given positions vs the 99.9th pct elsewhere."""
    mono = x.mean(axis=1).astype(np.float64)
    steps = np.abs(np.diff(mono))
    return max(steps[i - 1] for i in at) / float(np.percentile(steps, 99.9))


def test_long_track_is_rendered_in_sections_joined_on_bar_lines(
    short_window: ShortWindowDraft,
) -> None:
    t = tokens(duration_s=20.0, tempo_bpm=120.0)
    out = render_product(short_window, t)
    x = out.main
    assert x.shape == (round(20.0 * RATE), 2)
    joins = [round(first * t.bar_seconds * RATE) for first, _, _ in section_plan(t, 8.0)][1:]
    assert joins  # the 8 s window forced sections
    assert _max_jump_ratio(x, joins) < 1.0  # no click at a join
    for j in joins:  # no hole: the crossfade keeps the level up around the bar line
        around = x[j - RATE // 10 : j + RATE // 10]
        assert np.sqrt(np.mean(around**2)) > 0.25 * np.sqrt(np.mean(x**2))
    assert abs(float(x[-1, 0])) < 1e-3 and abs(float(x[0, 0])) < 1e-3  # faded in and out


def test_loop_without_native_support_is_crossfaded(short_window: ShortWindowDraft) -> None:
    t = tokens(product="loop", duration_s=8.0, tempo_bpm=120.0)
    x = render_product(short_window, t).main
    assert x.shape == (round(t.duration_s * RATE), 2)
    jump, level = seam_stats(x, RATE, 60.0 / t.tempo_bpm * RATE)
    assert jump <= 1.0 and level <= 1.5


def test_native_loop_is_seamless_and_whole_bars(draft: DraftBackend) -> None:
    t = tokens(product="loop", duration_s=7.0, tempo_bpm=100.0, meter="6/8")
    x = render_product(draft, t).main
    assert t.bars == 4 and x.shape[0] == round(4 * 1.8 * RATE)
    jump, level = seam_stats(x, RATE, 0.3 * RATE)
    assert jump <= 1.0 and level <= 1.5


def test_backend_limits_are_refused(short_window: ShortWindowDraft) -> None:
    with pytest.raises(UnsupportedControlsError, match="stems"):
        render_product(short_window, tokens(product="stems", duration_s=4.0))
    melody = tokens(duration_s=4.0).model_copy(
        update={"melody": [{"start_beat": 0, "duration_beats": 1, "pitch": 60}]}
    )
    with pytest.raises(UnsupportedControlsError, match="melody"):
        render_product(short_window, melody)


def _master(
    main: np.ndarray,
    t: ControlTokens,
    tmp: Path,
    parts: dict[str, np.ndarray] | None = None,
    profile_name: str = "streaming",
    mark: tuple[bytes, int] | None = None,
):
    profile = PROFILES[profile_name]
    job = MasteringJob(
        profile=profile, formats=["wav24", "flac"],
        tags=AudioTags(title="t", job_id="job-test", model="draft"),
        requested_duration_s=t.duration_s, instruments=[], seed=t.seed,
        loop_frames=round(t.duration_s * profile.sample_rate) if t.loop else None,
        parts=parts or {}, link="static" if t.product == "layers" else "curve", watermark=mark,
    )  # fmt: skip
    return master_files(main, RATE, job, tmp)


def test_stems_still_sum_to_the_mastered_mix(draft: DraftBackend, tmp_path: Path) -> None:
    t = tokens(product="stems", duration_s=12.0, instruments=["piano", "bass", "drums", "flute"])
    out = render_product(draft, t)
    assert set(out.parts) == {"drums", "bass", "harmony", "melody"}
    assert out.main_name == "mix"
    raw_sum = np.sum([p.astype(np.float64) for p in out.parts.values()], axis=0)
    assert np.max(np.abs(raw_sum - out.main)) < 1e-5
    files = _master(out.main, t, tmp_path, out.parts)
    mix, rate = sf.read(files.master, dtype="float64", always_2d=True)
    total = sum(sf.read(p.master, dtype="float64", always_2d=True)[0] for p in files.parts)
    error_db = 20 * np.log10(np.sqrt(np.mean((total - mix) ** 2)) / np.sqrt(np.mean(mix**2)))
    assert error_db < -60.0
    assert rate == PROFILES["streaming"].sample_rate and mix.shape[0] == round(12.0 * rate)
    assert all(len(p.deliverables) == 2 for p in files.parts)


@pytest.mark.parametrize("tempo", [120.0, 97.0])
def test_mastered_loop_stays_seamless(draft: DraftBackend, tmp_path: Path, tempo: float) -> None:
    t = tokens(product="loop", duration_s=8.0, tempo_bpm=tempo)
    out = render_product(draft, t)
    files = _master(out.main, t, tmp_path, profile_name="broadcast")  # 44.1 -> 48 kHz
    x, rate = sf.read(files.master, dtype="float64", always_2d=True)
    assert rate == 48000
    # Exact to the sample at the delivery rate, even when 44.1 kHz and 48 kHz frame counts of
    # the loop are not in a whole ratio (97 BPM).
    assert x.shape[0] == round(t.duration_s * rate)
    jump, level = seam_stats(x, rate, 60.0 / tempo * rate)
    assert jump <= 1.0 and level <= 1.5
    assert files.quality.findings == []  # a loop does not decay at its end, by design


def test_layers_share_the_grid_and_keep_their_levels(draft: DraftBackend, tmp_path: Path) -> None:
    t = tokens(product="layers", duration_s=8.0, tempo_bpm=120.0)
    out = render_product(draft, t)
    assert list(out.parts) == ["calm", "tense", "combat"] and out.main_name == "combat"
    assert {p.shape for p in out.parts.values()} == {(round(8.0 * RATE), 2)}
    files = _master(out.main, t, tmp_path, out.parts)
    levels = [p.integrated_lufs for p in files.parts]
    assert levels == sorted(levels) and levels[-1] - levels[0] > 3.0  # calm stays quieter
    assert levels[-1] == pytest.approx(-14.0, abs=0.5)
    for p in files.parts:
        x, rate = sf.read(p.master, dtype="float64", always_2d=True)
        assert x.shape[0] == round(8.0 * rate)
        assert seam_stats(x, rate, 0.5 * rate)[0] <= 1.0
    refs = [
        PartOutput(name=p.name, master=AudioRef(uri=f"s3://b/{p.name}", sha256="0" * 64,
                   sample_rate=48000, channels=2, duration_s=8.0, format="wav",
                   size_bytes=1), integrated_lufs=p.integrated_lufs,
                   true_peak_dbtp=p.true_peak_dbtp)
        for p in files.parts
    ]  # fmt: skip
    manifest = build_manifest(t, refs[-1].master, refs, "combat")
    assert manifest["bar_length_samples"] == 96000.0
    assert manifest["loop_length_samples"] == 384000
    assert manifest["switch_points_samples"] == [0, 96000, 192000, 288000]
    assert [p["energy"] for p in manifest["parts"]] == [0.25, 0.55, 0.9]


def test_watermarked_stems_still_sum_and_loops_stay_seamless(
    draft: DraftBackend, tmp_path: Path
) -> None:
    key, payload = b"test-key", payload_for_job("job-test")
    t = tokens(product="stems", duration_s=10.0)
    out = render_product(draft, t)
    files = _master(out.main, t, tmp_path, out.parts, mark=(key, payload))
    assert files.watermark == {"scheme": WATERMARK_SCHEME, "payload": f"{payload:08x}"}
    mix, rate = sf.read(files.master, dtype="float64", always_2d=True)
    assert detect(mix, rate, key).payload == payload
    total = sum(sf.read(p.master, dtype="float64", always_2d=True)[0] for p in files.parts)
    error_db = 20 * np.log10(np.sqrt(np.mean((total - mix) ** 2)) / np.sqrt(np.mean(mix**2)))
    assert error_db < -60.0
    assert files.measurements.true_peak_dbtp <= -1.0  # the limiter left room for the mark

    loop_t = tokens(product="loop", duration_s=8.0, tempo_bpm=120.0)
    loop_dir = tmp_path / "loop"
    loop_dir.mkdir()
    loop = _master(render_product(draft, loop_t).main, loop_t, loop_dir, mark=(key, payload))
    x, rate = sf.read(loop.master, dtype="float64", always_2d=True)
    assert detect(x, rate, key).payload == payload
    jump, level = seam_stats(x, rate, 0.5 * rate)
    assert jump <= 1.0 and level <= 1.5


def test_eval_controls_command_prints_rates_as_json() -> None:
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "tunesmith", "eval", "controls", "--n", "2", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["requests"] == 2
    assert [r["product"] for r in report["results"]] == ["track", "loop"]
    assert report["summary"]["duration_exact"] == 1.0
