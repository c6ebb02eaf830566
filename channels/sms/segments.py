"""SMS text for Chinese phones: UCS-2 segments counted by characters, never by UTF-8 bytes.

A message that fits one segment carries 70 characters; a concatenated message carries 67 per part
(the rest is the UDH header). Characters outside the Basic Multilingual Plane (most emoji) take two
UCS-2 code units. Carriers bill per segment, so long answers are cut to a budget of segments with an
invitation to ask for more."""

from __future__ import annotations

from dataclasses import dataclass

SINGLE = 70
PART = 67
MORE = "…回复“更多”看下文"


def units(text: str) -> int:
    """UCS-2 code units: one per character, two for a character beyond U+FFFF (emoji)."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def segment_count(text: str) -> int:
    size = units(text)
    if size <= SINGLE:
        return 1
    return -(-size // PART)


@dataclass(frozen=True)
class Cut:
    sent: str  # what goes out now (with the continuation invitation when cut)
    rest: str  # what "更多" will send next; empty when nothing is left
    segments: int


def _take(text: str, budget: int) -> int:
    """How many characters of text fit in budget UCS-2 units, without splitting a character."""
    used = 0
    for index, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > budget:
            return index
    return len(text)


def cut(text: str, max_segments: int, signature: str = "") -> Cut:
    """Fit "【签名】text" into max_segments segments; the remainder waits for "更多"."""
    full = f"{signature}{text}"
    if segment_count(full) <= max_segments:
        return Cut(full, "", segment_count(full))
    budget = (SINGLE if max_segments == 1 else PART * max_segments) - units(signature) - units(MORE)
    keep = _take(text, budget)
    # End at a line break when one is in the second half: a menu line ("回复15 心理援助热线") or a name
    # is never split between this message and the next.
    line_end = text.rfind("\n", 0, keep + 1)
    if line_end >= keep // 2:
        keep = line_end + 1
    sent = f"{signature}{text[:keep]}{MORE}"
    return Cut(sent, text[keep:], segment_count(sent))
