"""Scene ids: which rows show the same place at the same time, so splits can keep them together.

A row's scene is, in order of preference:

1. the scene its layout knows (GT-RAIN scene, DDN clean image id, SPA video, a video file),
   namespaced by source: ``"<source>:<scene>"``;
2. an EXIF capture session: photos from the same camera (make and model) whose capture times
   follow each other with gaps under ``gap_s`` seconds (default 60 s: a burst or a walk around one
   street corner) share the session of the earliest photo, ``"session:<id of first photo>"``;
3. for a pair, its clean image (the background): ``"clean:<id of the clean image>"``, so rain
   variants of one background are one scene whatever their rain;
4. the row itself: ``"file:<id>"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

DEFAULT_SESSION_GAP_S = 60.0
"""Largest gap between consecutive shots of one camera inside one capture session (seconds)."""


def parse_datetime(text: str | None) -> float | None:
    """POSIX seconds of an ISO 8601 capture time (no offset: read as UTC, good enough for gaps)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def assign_scenes(
    ids: Sequence[str],
    sources: Sequence[str],
    layout_scenes: Sequence[str | None],
    makes: Sequence[str | None],
    models: Sequence[str | None],
    datetimes: Sequence[str | None],
    *,
    gap_s: float = DEFAULT_SESSION_GAP_S,
    clean_ids: Sequence[str | None] | None = None,
) -> list[str]:
    """Scene id per row (see the module docstring); deterministic for the same rows in any order."""
    n = len(ids)
    if clean_ids is not None and len(clean_ids) != n:
        raise ValueError(f"clean_ids has {len(clean_ids)} entries for {n} rows")
    scenes: list[str | None] = [None] * n
    sessions: dict[tuple[str, str], list[tuple[float, str, int]]] = {}
    for i in range(n):
        if layout_scenes[i]:
            scenes[i] = f"{sources[i]}:{layout_scenes[i]}"
            continue
        moment = parse_datetime(datetimes[i])
        if moment is not None and (makes[i] or models[i]):
            sessions.setdefault((makes[i] or "", models[i] or ""), []).append((moment, ids[i], i))
    for shots in sessions.values():
        shots.sort()  # by time, then id: ties resolve the same way whatever the input order
        first_id, previous = shots[0][1], shots[0][0]
        for moment, row_id, index in shots:
            if moment - previous >= gap_s:
                first_id = row_id
            scenes[index] = f"session:{first_id}"
            previous = moment
    for i in range(n):
        if scenes[i] is None and clean_ids is not None and clean_ids[i]:
            scenes[i] = f"clean:{clean_ids[i]}"
    return [scene if scene is not None else f"file:{ids[i]}" for i, scene in enumerate(scenes)]
