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

from intents.menu import did_you_mean
from intents.services import catalogue
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
    offered: int = 0  # in-scope utterances not understood that got "did you mean" buttons
    offered_right: int = 0  # ... with the right service among them
    oos_offered: int = 0  # out-of-scope utterances that got "did you mean" buttons instead of a decline

    @property
    def offered_hit_rate(self) -> float:
        return self.offered_right / self.offered if self.offered else 0.0

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
            ("did-you-mean shown", f"{self.offered}"),
            ("  right service offered", f"{self.offered_hit_rate:.1%}"),
            ("  to out-of-scope", f"{self.oos_offered}"),
        ]
        lines = [f"{name:<26}{value:>10}" for name, value in rows]
        lines.append("worst confusions (expected → predicted: count):")
        lines += [f"  {a} → {b}: {n}" for (a, b), n in self.confusions.most_common(10)]
        return "\n".join(lines)


NEW_BATCHES = ("heldout_batch4.yaml",)  # written for issue 11; reported apart from the earlier ones


def load_heldout(directory: Path = HELDOUT_DIR, batch: str | None = None) -> dict[str, Any]:
    """tests/nlu/heldout*.yaml merged: {"examples": [...], "out_of_scope": [...]}. batch "old" or "new"
    picks the earlier batches or the new one; None takes all."""
    merged: dict[str, Any] = {"examples": [], "out_of_scope": []}
    for path in sorted(directory.glob("heldout*.yaml")):
        if batch is not None and (path.name in NEW_BATCHES) != (batch == "new"):
            continue
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
        offered = _offered(result)
        if offered:
            report.offered += 1
            report.offered_right += expected in offered
        wanted = {
            (k, normalize_text(str(v)))
            for k, values in (example.get("entities") or {}).items()
            for v in (values if isinstance(values, list) else [values])
        }
        found_as = [
            (e["entity"], text_of(e, normalize_text(example["text"])), str(e.get("value")))
            for e in result.get("entities") or []
        ]
        # As written ("人民医院") or as the synonym mapper stores it ("克拉玛依市人民医院"): either is right.
        found = {(k, value if (k, value) in wanted else written) for k, written, value in found_as}
        report.entity_tp += len(wanted & found)
        report.entity_fn += len(wanted - found)
        report.entity_fp += len({f for f in found if f[0] in {w[0] for w in wanted}} - wanted)
    for result in parsed_oos:
        predicted = (result.get("intent") or {}).get("name")
        report.oos_offered += bool(_offered(result))
        if predicted in REJECTED:
            report.oos_rejected += 1
        else:
            report.confusions[("out_of_scope", predicted)] += 1
    report.macro_f1 = _macro_f1(predicted_pairs)
    return report


def _offered(result: dict[str, Any]) -> list[str]:
    """The services a "did you mean" would offer for this parse (intents.menu.did_you_mean)."""
    if (result.get("intent") or {}).get("name") != "nlu_fallback":
        return []
    answer = did_you_mean(result.get("text") or "", result.get("intent_ranking") or [], {})
    if answer is None:
        return []
    names = {s.name: s.intent for s in catalogue().services}
    return [names[b["title"]] for b in answer.buttons if b["title"] in names]


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
