"""Volume (1 gentlest .. 11 fastest) as a pace: how long one chunk should take, and how long to
rest after it relative to its duration. Chunk time is what the chunker sizes chunks to; the rest
gives the server's other work room at low volumes."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_VOLUME = 8


@dataclass(frozen=True)
class Pace:
    chunk_seconds: float
    pause_ratio: float
    fixed_chunk: int | None = None
    """A fixed chunk size (rows, or key span for integer keys) instead of adapting by time."""


_PACES: dict[int, Pace] = {
    1: Pace(0.05, 4.0),
    2: Pace(0.1, 2.0),
    3: Pace(0.1, 1.0),
    4: Pace(0.2, 0.5),
    5: Pace(0.25, 0.25),
    6: Pace(0.3, 0.1),
    7: Pace(0.4, 0.0),
    8: Pace(0.5, 0.0),
    9: Pace(0.75, 0.0),
    10: Pace(1.0, 0.0),
    11: Pace(1.5, 0.0),
}


def parse_volume(value: str | int | None) -> int:
    """A volume from a control value; ValueError with a plain reason otherwise."""
    try:
        volume = int(str(value).strip())
    except ValueError:
        raise ValueError(f"volume must be a whole number from 1 to 11, not {value!r}") from None
    if volume not in _PACES:
        raise ValueError(f"volume must be from 1 to 11, not {volume}")
    return volume


def pace(volume: int | None) -> Pace:
    return _PACES[volume if volume in _PACES else DEFAULT_VOLUME]
