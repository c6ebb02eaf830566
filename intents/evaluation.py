"""NLU evaluation on held-out utterances (tests/nlu/heldout.yaml), written independently of the
training examples: intent accuracy, macro-F1, entity F1, out-of-scope rejection, worst confusions."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from intents.zh import normalize_text

HELDOUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "nlu"
REJECTED = {"out_of_scope", "nlu_fallback"}

Parse = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass
class Report:
    examples: int = 0
    correct: int = 0
    macro_f1: float = 0.0
    entity_tp: int = 0
    entity_fp: int = 0
    entity_fn: int = 0
    oos_total: int = 0
    oos_rejected: int = 0
    confusions: Counter = field(default_factory=Counter)

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples if self.examples else 0.0

    @property
    def entity_f1(self) -> float:
        precision = self.entity_tp / max(1, self.entity_tp + self.entity_fp)
        recall = self.entity_tp / max(1, self.entity_tp + self.entity_fn)
        return 2 * precision * recall / max(1e-9, precision + recall)

    @property
    def oos_rejection(self) -> float:
        return self.oos_rejected / self.oos_total if self.oos_total else 0.0

    def table(self) -> str:
        rows = [
            ("in-scope utterances", f"{self.examples}"),
            ("intent accuracy", f"{self.accuracy:.1%}"),
            ("intent macro-F1", f"{self.macro_f1:.3f}"),
            ("entity F1", f"{self.entity_f1:.3f}"),
            ("out-of-scope utterances", f"{self.oos_total}"),
            ("out-of-scope rejected", f"{self.oos_rejection:.1%}"),
        ]
        lines = [f"{name:<26}{value:>10}" for name, value in rows]
        lines.append("worst confusions (expected → predicted: count):")
        lines += [f"  {a} → {b}: {n}" for (a, b), n in self.confusions.most_common(10)]
        return "\n".join(lines)


def load_heldout(directory: Path = HELDOUT_DIR) -> dict[str, Any]:
    """Every tests/nlu/heldout*.yaml, merged: {"examples": [...], "out_of_scope": [...]}."""
    merged: dict[str, Any] = {"examples": [], "out_of_scope": []}
    for path in sorted(directory.glob("heldout*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        merged["examples"] += data.get("examples") or []
        merged["out_of_scope"] += data.get("out_of_scope") or []
    return merged


async def evaluate(parse: Parse, heldout: dict[str, Any] | None = None, concurrency: int = 8) -> Report:
    heldout = heldout or load_heldout()
    examples = heldout["examples"]
    oos = heldout.get("out_of_scope", [])
    limit = asyncio.Semaphore(concurrency)

    async def one(text: str) -> dict[str, Any]:
        async with limit:  # the gateway normalises text before Rasa sees it: so does the evaluation
            return await parse(normalize_text(text))

    parsed = await asyncio.gather(*(one(e["text"]) for e in examples))
    parsed_oos = await asyncio.gather(*(one(t) for t in oos))
    report = Report(examples=len(examples), oos_total=len(oos))
    predicted_pairs = []
    for example, result in zip(examples, parsed, strict=True):
        expected, predicted = example["intent"], (result.get("intent") or {}).get("name")
        predicted_pairs.append((expected, predicted))
        if predicted == expected:
            report.correct += 1
        else:
            report.confusions[(expected, predicted)] += 1
        wanted = {(k, normalize_text(str(v))) for k, v in (example.get("entities") or {}).items()}
        found = {(e["entity"], text_of(e, normalize_text(example["text"]))) for e in result.get("entities") or []}
        report.entity_tp += len(wanted & found)
        report.entity_fn += len(wanted - found)
        report.entity_fp += len({f for f in found if f[0] in {w[0] for w in wanted}} - wanted)
    for result in parsed_oos:
        predicted = (result.get("intent") or {}).get("name")
        if predicted in REJECTED:
            report.oos_rejected += 1
        else:
            report.confusions[("out_of_scope", predicted)] += 1
    report.macro_f1 = _macro_f1(predicted_pairs)
    return report


def text_of(entity: dict[str, Any], text: str) -> str:
    """The entity as written (before synonym mapping), which is what the held-out file records."""
    if "start" in entity and "end" in entity:
        return text[entity["start"] : entity["end"]]
    return str(entity.get("value"))


def _macro_f1(pairs: list[tuple[str, str | None]]) -> float:
    labels = {expected for expected, _ in pairs}
    scores = []
    for label in labels:
        tp = sum(1 for e, p in pairs if e == label and p == label)
        fp = sum(1 for e, p in pairs if e != label and p == label)
        fn = sum(1 for e, p in pairs if e == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores) if scores else 0.0
