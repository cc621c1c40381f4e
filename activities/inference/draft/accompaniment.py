"""The accompaniment writers: bass, pad, harmony, drums and percussion, one part each.

No generator draws here: patterns come from the drawn `Style`, and each bar's level decides
what plays, so energy changes density without changing the piece. Each writer takes `k`, the
instrument's index within its role (a second one doubles or interlocks instead of repeating
the first), and `salt`, which keeps the velocity humanization of parts apart.
"""

from __future__ import annotations

from activities.inference.draft.context import Context, Note
from activities.inference.draft.form import Bar, Material
from activities.inference.draft.theory import Chord

# Bar level (energy shaped by the section) from which each texture plays. Monotonic, so a
# higher energy never drops a role that a lower one plays.
DRUMS_LIGHT = 0.3  # kick on the downbeat, cymbal on pulses, side stick
DRUMS_FULL = 0.45  # the groove: kick/snare pattern, cymbal on subdivisions, fills
BUSY = 0.75  # pushes, ghost notes, finer cymbals, bass in eighths
BASS_ON = 0.2  # held roots
BASS_PATTERN = 0.45
HARMONY_PATTERN = 0.35  # below: held chords
PERCUSSION_ON = 0.6

# GM percussion keys.
KICK, SIDE_STICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 37, 38, 42, 46, 49, 51
TAMBOURINE, SHAKER = 54, 70
TOMS = (50, 48, 47, 45)


def _nearest(pc: int, centre: int) -> int:
    """The pitch with pitch class `pc` nearest to MIDI pitch `centre`."""
    return centre + ((pc - centre + 6) % 12) - 6


def _voicing(ctx: Context, chord: Chord, centre: int) -> list[int]:
    # Each chord tone nearest a fixed centre: close voicings with smooth voice leading.
    return sorted(_nearest(pc, centre) for pc in ctx.key.chord_pcs(chord))


def write_bass(ctx: Context, k: int, salt: int) -> list[Note]:
    notes: list[Note] = []
    m = ctx.meter
    group_starts = [m.pulses[j][0] for j in range(len(m.pulses)) if m.stress[j] > 0]
    for i, bar in enumerate(ctx.bars):
        lvl = bar.level

        def tones(chord: Chord) -> tuple[int, int, int]:
            pcs = ctx.key.chord_pcs(chord)
            root = 36 + pcs[0] + (12 if k % 2 else 0)  # a second bass doubles an octave up
            return root, root + (pcs[1] - pcs[0]) % 12, root + (pcs[2] - pcs[0]) % 12

        if bar.final:
            root = tones(bar.chord)[0]
            notes.append(ctx.note(salt, bar.start_s, ctx.final_end_s, root, 100, lvl))
            continue
        if bar.section == "intro":
            if bar.bar_in_section >= bar.section_length // 2 and lvl >= BASS_ON / 2:
                root = tones(bar.chord)[0]
                notes.append(ctx.note(salt, bar.start_s, ctx.bar_end(bar), root, 85, lvl))
            continue
        if lvl < BASS_ON:
            continue
        spans = bar.spans(m.bar_q)
        if lvl < BASS_PATTERN:
            for a, b, chord in spans:
                root = tones(chord)[0]
                notes.append(ctx.note(salt, ctx.at(bar, a), ctx.at(bar, b) - 0.03, root, 88, lvl))
            continue
        pattern = ctx.style.bass_pattern[bar.material] if k == 0 else "root_fifth"
        if lvl >= BUSY and pattern == "root_fifth":
            pattern = "eighths"
        hits: list[tuple[float, float, str]] = []  # (onset, length, tone) in bar quarters
        span_starts = {a for a, _, _ in spans}
        if pattern == "root_fifth":
            starts = sorted(set(group_starts) | span_starts)
            for j, on in enumerate(starts):
                end = starts[j + 1] if j + 1 < len(starts) else m.bar_q
                tone = "root" if on in span_starts or j % 2 == 0 else "fifth"
                hits.append((on, end - on, tone))
        elif pattern == "eighths":
            for subs, (_, length) in zip(m.subdivisions, m.pulses, strict=True):
                step = length / len(subs)
                hits += [(s, step * 0.9, "root") for s in subs]
        elif pattern == "walk":
            cycle = ("root", "third", "fifth")
            j = 0
            for p, (on, length) in enumerate(m.pulses):
                if on in span_starts:
                    j = 0
                last = p == len(m.pulses) - 1
                hits.append((on, length * 0.9, "approach" if last and p else cycle[j % 3]))
                j += 1
        else:  # "sync": long root, a pushed root, the third on the last pulse
            p0 = m.pulses[0]
            hits.append((0.0, p0[1] * 1.4, "root"))
            if len(m.pulses) >= 2:
                on1, len1 = m.pulses[1]
                hits.append((on1 + len1 * 0.5, len1 * 0.45, "root"))
            if len(m.pulses) >= 3:
                # The chord's third, not only roots and fifths: a bass whose overtones are the
                # only thirds around makes minor chords read as major.
                on, length = m.pulses[-1]
                hits.append((on, length * 0.9, "third"))
        for on, length, tone in hits:
            chord = bar.chord_at(on)
            root, third, fifth = tones(chord)
            span_end = next(b for a, b, _ in spans if a <= on + 1e-9 < b + 1e-9)
            if tone == "approach":
                nxt = ctx.next_chord(i, bar, on)
                target = tones(nxt)[0]
                nd = nxt.degree
                # Diatonic step into the next root (from below when rising, else from above),
                # spelled in the current chord: over V in minor, the leading tone rises to i.
                if target > root:
                    pitch = target - (ctx.key.semitones(nd) - ctx.key.semitones(nd - 1, chord))
                elif target < root:
                    pitch = target + (ctx.key.semitones(nd + 1, chord) - ctx.key.semitones(nd))
                else:
                    pitch = fifth
            else:
                pitch = {"root": root, "third": third, "fifth": fifth}[tone]
            end = min(on + length, span_end)
            accent = 10 if on == 0 else 0
            notes.append(ctx.note(salt, ctx.at(bar, on), ctx.at(bar, end), pitch, 92 + accent, lvl))
    return notes


def write_pad(ctx: Context, k: int, salt: int) -> list[Note]:
    """Held chords, one per chord change (across bar lines within a section)."""
    notes: list[Note] = []
    centre = 57 + (12 if k % 2 else 0)
    spans: list[tuple[float, float, Chord, Bar]] = []
    for bar in ctx.bars:
        for a, b, chord in bar.spans(ctx.meter.bar_q):
            end = ctx.final_end_s if bar.final else ctx.at(bar, b)
            prev = spans[-1] if spans else None
            if prev and prev[2] == chord and prev[3].section_number == bar.section_number:
                spans[-1] = (prev[0], end, chord, prev[3])
            else:
                spans.append((ctx.at(bar, a), end, chord, bar))
    for start, end, chord, first in spans:
        voicing = _voicing(ctx, chord, centre)
        voicing.insert(0, _nearest(ctx.key.chord_pcs(chord)[0], centre - 12))
        stop = end if (first.final or end >= ctx.duration_s - 1e-6) else end - 0.03
        base = 70 if first.material == "A" else 80
        for p in voicing:
            notes.append(ctx.note(salt, start, stop, p, base, first.level, 2))
    return notes


def write_harmony(ctx: Context, k: int, light: bool, salt: int) -> list[Note]:
    notes: list[Note] = []
    m, q = ctx.meter, ctx.quarter_s
    centre = 62 + (0, 12, -7)[k % 3]
    base_vel = 72 if light else 84
    materials: tuple[Material, ...] = ("A", "B", "C")
    for bar in ctx.bars:
        lvl = bar.level
        spans = bar.spans(m.bar_q)
        if bar.section == "intro" or bar.final or lvl < HARMONY_PATTERN:
            for a, b, chord in spans:
                end = ctx.final_end_s if bar.final else ctx.at(bar, b)
                for p in _voicing(ctx, chord, centre):
                    notes.append(ctx.note(salt, ctx.at(bar, a), end, p, base_vel, lvl))
            continue
        # A second harmony instrument takes another material's pattern so the two interlock.
        mat = materials[(materials.index(bar.material) + k) % 3]
        pattern = ctx.style.harmony_pattern[mat]
        span_end = {a: b for a, b, _ in spans}

        def end_of(on: float, length: float, ends: dict[float, float] = span_end) -> float:
            # A note ends where its chord does.
            return min(on + length, min(b for a, b in ends.items() if a <= on + 1e-9 < b))

        if pattern == "arp":
            steps: list[tuple[float, float]] = []
            for subs, (on, length) in zip(m.subdivisions, m.pulses, strict=True):
                sub = length / len(subs)
                if sub * q >= 0.16:
                    steps += [(s, sub) for s in subs]
                else:
                    steps.append((on, length))
            for j, (on, step) in enumerate(steps):
                tones = _voicing(ctx, bar.chord_at(on), centre)
                tones.append(tones[0] + 12)
                p = tones[ctx.style.arp_order[j % len(ctx.style.arp_order)] % len(tones)]
                accent = 8 if on == 0 else 0
                end = ctx.at(bar, end_of(on, 2 * step))
                notes.append(ctx.note(salt, ctx.at(bar, on), end, p, base_vel + accent - 6, lvl))
        elif pattern == "block":
            for p_i, (on, length) in enumerate(m.pulses):
                accent = 8 if m.stress[p_i] == 2 else 4 if m.stress[p_i] else 0
                end = ctx.at(bar, end_of(on, 0.85 * length))
                for p in _voicing(ctx, bar.chord_at(on), centre):
                    notes.append(
                        ctx.note(salt, ctx.at(bar, on), end, p, base_vel - 8 + accent, lvl)
                    )
        else:  # "comp": a long chord on each chord change, off-beat stabs on backbeat pulses
            hits = [(a, 1.4 * m.pulses[m.pulse_index(a)][1], 0) for a in span_end]
            for p_i, (on, length) in enumerate(m.pulses):
                if m.drum_roles[p_i] == "S":
                    off = on + length * (2 / 3 if m.pulse_units[p_i] == 3 else 0.5)
                    hits.append((off, 0.4 * length, 10))
            for on, length, soft in hits:
                end = ctx.at(bar, end_of(on, length))
                for p in _voicing(ctx, bar.chord_at(on), centre):
                    notes.append(ctx.note(salt, ctx.at(bar, on), end, p, base_vel - soft, lvl))
    return notes


def write_drums(ctx: Context, salt: int) -> list[Note]:
    notes: list[Note] = []
    m, q = ctx.meter, ctx.quarter_s
    n_pulses = len(m.pulses)
    shortest_pulse = min(length for _, length in m.pulses) * q
    hit_s = min(0.2, shortest_pulse / 2)

    for bar in ctx.bars:
        lvl = bar.level

        def hit(on: float, key: int, vel: float, length: float = hit_s, bar: Bar = bar) -> None:
            start = ctx.at(bar, on)
            notes.append(ctx.note(salt, start, start + length, key, vel, bar.level, 5))

        if bar.final:
            hit(0, KICK, 105)
            hit(0, CRASH, 100, ctx.final_end_s - bar.start_s)
            continue
        if bar.section == "intro":
            if lvl < DRUMS_LIGHT / 2:
                continue
            for pulse_subs in m.subdivisions:
                for j, s in enumerate(pulse_subs if lvl >= DRUMS_FULL else pulse_subs[:1]):
                    hit(s, CLOSED_HAT, 70 if j == 0 else 52)
            if bar.bar_in_section >= bar.section_length // 2:
                hit(0, KICK, 90)
            continue
        if lvl < DRUMS_LIGHT:
            continue
        full, busy = lvl >= DRUMS_FULL, lvl >= BUSY
        kick = ctx.style.drum_kick[bar.material]
        cymbal = RIDE if bar.material == "B" and full else CLOSED_HAT
        fill = full and bar.is_section_end and n_pulses >= 2
        fill_from = n_pulses - (2 if ctx.style.fill_toms and n_pulses >= 4 else 1)
        fill_from = fill_from if fill else n_pulses
        starts_section = bar.bar_in_section == 0 and (bar.section_number > 0 or ctx.loop)
        if full and starts_section and (bar.section_number > 0 or busy):
            hit(0, CRASH, 95, min(2.0, ctx.bar_s))
        for p_i in range(fill_from):
            on, length = m.pulses[p_i]
            role, stress = m.drum_roles[p_i], m.stress[p_i]
            subs: list[float] = list(m.subdivisions[p_i])
            sub = length / len(subs)
            if role == "K" and (full or stress == 2):
                hit(on, KICK, 104 if stress == 2 else 96)
            elif full and kick == "floor":
                hit(on, KICK, 90)
            if role == "S":
                if full:
                    hit(on, SNARE, 98)
                else:
                    hit(on, SIDE_STICK, 84)
            if full and kick == "push" and role == "S" and p_i + 1 < n_pulses:
                hit(subs[-1], KICK, 84)
            if full and kick == "syncop" and p_i == n_pulses - 1:
                hit(subs[-1], KICK, 84)
            if busy and role == "S" and len(subs) >= 2:
                hit(subs[-1], SNARE, 48)  # ghost note
            if not full:
                subs = subs[:1]
            elif (busy or sub * q >= 0.4) and sub * q / 2 >= 0.09:
                subs = [x for s in subs for x in (s, s + sub / 2)]
            for j, s in enumerate(subs):
                last_off = (
                    bar.material == "B" and full and p_i == n_pulses - 1 and j == len(subs) - 1
                )
                vel = (76 if stress else 70) if j == 0 else 56 if j % 2 else 62
                hit(s, OPEN_HAT if last_off else cymbal, vel)
        if fill:
            start = m.pulses[fill_from][0]
            step = 0.25 if 0.25 * q >= 0.07 else 0.5
            n_steps = max(1, round((m.bar_q - start) / step))
            for j in range(n_steps):
                key = TOMS[j * len(TOMS) // n_steps] if ctx.style.fill_toms else SNARE
                hit(start + j * step, key, 72 + 30 * j / max(1, n_steps - 1))
            hit(start, KICK, 96)
    return notes


def write_percussion(ctx: Context, salt: int) -> list[Note]:
    """A second drum instrument adds tambourine and shaker instead of doubling the kit."""
    notes: list[Note] = []
    m = ctx.meter
    for bar in ctx.bars:
        if bar.section == "intro" or bar.final or bar.level < PERCUSSION_ON:
            continue
        for p_i, subs in enumerate(m.subdivisions):
            if m.drum_roles[p_i] == "S":
                start = ctx.at(bar, subs[0])
                notes.append(ctx.note(salt, start, start + 0.15, TAMBOURINE, 70, bar.level))
            for s in subs[1:]:
                start = ctx.at(bar, s)
                notes.append(ctx.note(salt, start, start + 0.1, SHAKER, 58, bar.level))
    return notes
