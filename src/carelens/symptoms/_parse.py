"""Free text -> canonical symptoms, with negation ("no fever", "denies cough") and what was not understood.

Matching has two steps per clause: exact or synonym phrase match (word boundaries), then, for clauses
with no phrase match, the nearest vocabulary phrase by sentence embedding if its cosine similarity is
at least ``threshold`` (chosen on the labelled phrase set in ``tests/symptoms/phrases.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from carelens.symptoms._vocabulary import Vocabulary

__all__ = ["DEFAULT_THRESHOLD", "ParsedSymptoms", "SymptomParser"]

DEFAULT_THRESHOLD = 0.62
_NEGATION = re.compile(
    r"^(?:no|not|never|without|denies|denied|deny|hasn't|hasnt|hasn't had|doesn't have|does not have|"
    r"isn't|is not|no sign of|negative for|free of|nor|won't|can't|refuses)\b\s*", re.IGNORECASE)
_SPLIT = re.compile(r"[.;,!?\n]+|\s+\b(?:and|but|also|plus|with|then|or|nor)\b\s+", re.IGNORECASE)
_FILLER = re.compile(r"^(?:he|she|it|they|i|we|my \w+|the \w+|our \w+|has|have|had|is|are|was|were|keeps|"
                     r"been|a|an|some|any|bit of|little|lot of|lots of|very|really|also|now|since|today|"
                     r"yesterday|seems|seem|to|be|feels?|feeling|got|getting)\s+", re.IGNORECASE)


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class ParsedSymptoms:
    present: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    matches: list[dict[str, object]] = field(default_factory=list)  # clause, id, score, method, negated


def _strip_filler(clause: str) -> str:
    prev = None
    while prev != clause:
        prev, clause = clause, _FILLER.sub("", clause)
    return clause.strip()


class SymptomParser:
    def __init__(self, vocabulary: Vocabulary, encoder: Encoder | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        self.vocab = vocabulary
        self.encoder = encoder
        self.threshold = threshold
        phrases = vocabulary.phrases()
        # longest phrases first, so "high fever" wins over "fever"
        self._phrases = sorted(((p.lower(), sid) for p, sid in phrases), key=lambda t: -len(t[0]))
        self._patterns = [(p, re.compile(rf"\b{re.escape(p)}\b"), sid) for p, sid in self._phrases]
        self._emb: np.ndarray | None = None

    def _phrase_embeddings(self) -> np.ndarray:
        if self._emb is None:
            assert self.encoder is not None
            self._emb = self.encoder.encode([p for p, _ in self._phrases])
        return self._emb

    def parse(self, text: str) -> ParsedSymptoms:
        out = ParsedSymptoms()
        parts = _SPLIT.split(text)
        seps = [m.group(0).strip().lower() for m in _SPLIT.finditer(text)]
        pending: list[tuple[str, str, bool]] = []  # (clause, core text, negated)
        prev_negated = False
        for k, raw in enumerate(parts):
            clause = raw.strip().lower() if raw else ""
            if not clause:
                continue
            core = _strip_filler(clause)
            negated = bool(_NEGATION.match(core))
            # "no fever or cough": the negation carries over an 'or'/'nor'
            if not negated and k > 0 and seps[k - 1] in ("or", "nor") and prev_negated:
                negated = True
            prev_negated = negated
            found = self._exact(clause)
            if found:
                for sid, phrase in found:
                    # a phrase that itself says "not ..." ("not eating") is a present symptom
                    self._add(out, sid, clause, 1.0, "phrase", negated and not _NEGATION.match(phrase))
                continue
            core = _strip_filler(_NEGATION.sub("", core))
            if core:
                pending.append((clause, core, negated))
        if pending:
            if self.encoder is None:
                out.unmapped += [c for c, _, _ in pending]
            else:
                vecs = self.encoder.encode([core for _, core, _ in pending])
                sims = vecs @ self._phrase_embeddings().T
                for (clause, _, neg), row in zip(pending, sims, strict=True):
                    j = int(row.argmax())
                    if row[j] >= self.threshold:
                        self._add(out, self._phrases[j][1], clause, float(row[j]), "embedding", neg)
                    else:
                        out.unmapped.append(clause)
        return out

    def _exact(self, text: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        taken = text
        for phrase, pat, sid in self._patterns:
            if pat.search(taken):
                found.append((sid, phrase))
                taken = pat.sub(" ", taken)  # a word is used by one phrase only
        return found

    @staticmethod
    def _add(out: ParsedSymptoms, sid: str, clause: str, score: float, method: str, negated: bool) -> None:
        target = out.absent if negated else out.present
        if sid not in target:
            target.append(sid)
        out.matches.append({"clause": clause, "id": sid, "score": round(score, 3), "method": method,
                            "negated": negated})
