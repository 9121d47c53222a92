"""What the agent does with a validly signed ack: pure, so every case is a plain test.

A signature says HQ wrote the ack, not that it is HQ's latest word: the broker keeps the last one
retained, two HQ workers may publish theirs out of order, and anyone can re-publish an old one.
So:

- **Progress** is taken from any signed ack: HQ signs only what it committed, and an old ack
  covers only seqs a newer one covered too, so it never deletes what HQ lacks.
- **A gap HQ reports below seqs the outbox no longer holds** (HQ lost data it had acknowledged,
  e.g. a database restored from a backup) cannot be filled by a resend; the agent reports it as
  unrecoverable and treats HQ's ``ranges`` above it as acknowledged, so the outbox still drains.
- **A lower ack** than the agent believed means HQ lost data only when it is newer (``at_us``)
  than every ack applied before; then the agent resends at once what it still holds. An older
  one is a replay or a late duplicate and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.acks import Ack, Range


@dataclass(frozen=True)
class Decision:
    """``upto``: the seq the outbox may delete up to; ``rewind``: resend the window now;
    ``lost`` (only when ``fresh``): HQ's current gaps the outbox no longer holds."""

    upto: int
    rewind: bool
    fresh: bool
    lost: tuple[Range, ...]


def decide(ack: Ack, believed: int, deleted_upto: int, newest_at_us: int) -> Decision:
    """``believed``: the agent's acknowledged seq; ``deleted_upto``: the highest seq the outbox ever
    deleted; ``newest_at_us``: the newest ``at_us`` of the acks applied so far."""
    upto = ack.upto
    for lo, hi in ack.ranges:
        if lo - 1 > deleted_upto:
            break  # the outbox still holds part of this gap: the resend fills it
        upto = hi
    fresh = ack.at_us > newest_at_us
    lost = tuple(_gaps(ack, deleted_upto)) if fresh else ()
    rewind = fresh and ack.upto < believed and upto <= believed
    return Decision(max(upto, believed), rewind, fresh, lost)


def _gaps(ack: Ack, deleted_upto: int) -> list[Range]:
    """The seqs in ``(ack.upto, deleted_upto]`` outside ``ack.ranges``."""
    gaps, after = [], ack.upto
    for lo, hi in ack.ranges:
        if after >= deleted_upto:
            break
        gaps.append((after + 1, min(lo - 1, deleted_upto)))
        after = hi
    if after < deleted_upto:
        gaps.append((after + 1, deleted_upto))
    return gaps


def count(ranges: tuple[Range, ...]) -> int:
    """How many seqs ``ranges`` span."""
    return sum(hi - lo + 1 for lo, hi in ranges)
