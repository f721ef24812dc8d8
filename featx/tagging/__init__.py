"""Named-entity recognition (and any IOB2 tagging) on frozen or fine-tuned word vectors.

:func:`train_ner` (:mod:`~featx.tagging.train`) fits a :class:`Tagger`: the encoder's word
vectors (through :meth:`~featx.encoders.transformer.TransformerEncoder.encode_tokens`)
with their neighbours and word-shape flags (:mod:`~featx.tagging.features`), standardised,
under a linear-chain CRF (:mod:`~featx.tagging.crf`). With ``train_layers > 0`` the
encoder's top layers are fine-tuned for the tags first (needs the ``export`` extra) and
the CRF is trained on the fine-tuned encoder's vectors. No torch is needed to predict.
Readers of CoNLL and JSONL-span data are in :mod:`~featx.tagging.data`, tag schemes and
entity-level scores in :mod:`~featx.tagging.tags`.
"""

from __future__ import annotations

from featx.tagging.data import Sentence, read_sentences
from featx.tagging.features import TokenEmbedder
from featx.tagging.tagger import Tagger
from featx.tagging.tags import Entity, entity_scores
from featx.tagging.train import train_ner

__all__ = [
    "Entity",
    "Sentence",
    "Tagger",
    "TokenEmbedder",
    "entity_scores",
    "read_sentences",
    "train_ner",
]
