"""Free text -> canonical symptoms, each negated or not, with the span it came from and what was not understood.

Rules first, as clinical negation detection does (NegEx: Chapman et al. 2001, *A simple algorithm for identifying
negated findings and diseases in discharge summaries*, J Biomed Inform 34:301):

* **Segments**: the text splits at sentence punctuation and commas only; several symptoms in one segment ("a
  cough and a sore throat") are all found.
* **Phrases**: every display name and curated synonym of the vocabulary (``synonyms/*.yaml``), longest first,
  on word boundaries, each word used once. A mildness word just before a phrase whose symptom has a ``milder``
  variant gives that variant ("a slight temperature": ``mild_fever``).
* **Frames**: a site and a descriptor of the same symptom said near each other in a segment, in either order and
  at most ``FRAME_WINDOW`` words apart with no terminator between ("my tummy is swollen and tight", "it hurts in the
  middle of my chest", "my nose won't stop dripping"): the vocabulary's ``frames``, built from word classes in the
  synonym file. Nearest pairs first; a descriptor word serves one frame. A negation cue between the two ("my
  stomach doesn't hurt") negates it.
* **Negation with scope**: a cue (no, not, without, denies, haven't had, doesn't have, no sign of ...) negates the
  phrases after it in its segment, up to a terminator (but, although, though, except, just, only, still,
  however, today ...); a segment that starts with "or"/"nor" continues the previous segment's open scope ("no
  fever, or cough"). Pseudo-negations are not cues: "can't stop", "won't stop", "not only", "no better" ... A
  phrase holding a negative word itself ("not eating", "can't smell") is a present symptom. Post-cues ("that's
  gone now", "has cleared up") negate the phrases before them in the segment.
* **Spelling**: with an encoder, a word of five letters or more that is neither in the vocabulary's phrases nor an
  English word the encoder knows whole is read as the vocabulary word within one edit (two from eight letters),
  when exactly one is that close ("hedache": headache, "diarhoea": diarrhoea, "temprature": temperature), by
  Levenshtein distance (``rapidfuzz``). Spans stay on the words as written.
* **Context**: words that name a symptom only beside another, as the vocabulary's ``contexts`` say ("no blood" in a
  complaint about diarrhoea: no blood in the stool; beside a cough: none in the sputum), when exactly one applies.
* **Embedding fallback**: what is left of a segment once phrases, cues and filler words are removed, when it still
  holds a content word, is matched to the nearest vocabulary phrase by sentence embedding if the cosine
  similarity reaches ``threshold`` (chosen on the tuning half of the labelled complaints: ``bench/symptom_parse.py``);
  otherwise it is reported as not understood.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from carelens.symptoms._vocabulary import Vocabulary

__all__ = ["DEFAULT_THRESHOLD", "ParsedSymptoms", "SymptomParser"]

# the embedding fallback's cosine threshold: of 0.58-0.80 the one with the highest exact-match rate on the tuning half
# of the lay complaints (pools A and B): 0.70 (0.970; 0.964 at 0.58-0.66, 0.961 from 0.74)
DEFAULT_THRESHOLD = 0.70
FRAME_WINDOW = 5  # words between a frame's site and descriptor at most: "it hurts in the middle of my chest"
SINGLE_WORD_MARGIN = 0.15  # added to the threshold for a one-word leftover (chosen on the tuning half)
SPELLING_MIN_LETTERS = 5  # shorter words are not corrected: too many real words lie one edit from each other
SPELLING_CACHE = 20_000  # words whose correction is remembered; a server's cache is emptied when it gets there

_SEGMENT = re.compile(r"[.;,!?\n]+")
_PSEUDO = re.compile(r"\b(?:can'?t|cannot|won'?t|couldn'?t|haven'?t|hasn'?t|doesn'?t|didn'?t|never|not|no)\s+"
                     r"(?:stop|stopped|stops|seem to stop|only|better|change|improvement|worse)\b|"
                     r"\bnever stops?\b|\bno end\b|\bnot (?:himself|herself|myself|themselves|itself)\b")
_CUES = (  # longest first: "no sign of" is one cue, not "no" and a leftover "sign of"
    "no signs of", "no sign of", "no longer", "negative for", "free of", "haven't had", "haven't got", "havent had",
    "hasn't had", "hasn't got", "hasnt had", "hadn't had", "has not had", "have not had", "doesn't have",
    "doesnt have", "don't have", "dont have", "didn't have", "does not have", "do not have", "did not have",
    "doesn't seem to have", "don't get", "haven't seen any", "haven't noticed any", "haven't noticed", "not showing",
    "don't think i have", "don't think he has", "don't think she has", "free from", "wouldn't say", "would not say",
    "wouldn't call it", "wouldn't describe it as", "isn't", "aren't", "wasn't",
    "is not", "are not", "was not", "without", "denies", "denied", "deny", "neither", "never", "none", "nor", "not",
    "no",
)
# "don't feel sick": the cue is "don't", and "feel sick" stays whole for the phrase that holds it
_FEEL_CUE = r"(?:don'?t|doesn'?t|didn'?t|do not|does not|did not)(?=\s+(?:feel|feels|look|looks|seem|seems)\b)"
_CUE = re.compile(r"\b(?:" + "|".join(re.escape(c) for c in _CUES) + "|" + _FEEL_CUE + r")\b")
_TERMINATOR = re.compile(r"\b(?:but|although|though|except|just|only|still|however|yet|whereas|apart from|"
                         r"today|now it'?s|instead|and (?:feel|feels|feeling|felt)|"
                         # "and" opening a clause of its own: "I don't have any energy and my throat is itchy"
                         r"and (?:my|his|her|their|i|i'm|i've|he|she|he's|she's|it's|they|the|there)(?=\s))\b")
# at the end of what it says, or before "too", "now" ...: "my vision has gone blurry" is not a resolution
_POST_CUE = re.compile(r"\b(?:(?:that'?s|it'?s|is|has|have|are) (?:gone|cleared up|cleared|better|settled|stopped)|"
                       r"went away|has gone away|cleared up)\b(?=\s*$|\s+(?:too|now|away|completely|altogether|"
                       r"though|as well|again|since|for good)\b)|"
                       r"\b(?:he'?s|she'?s|i'?m|it'?s|they'?re|i feel) (?:fine|better|back to normal|all better|okay|ok) "
                       r"(?:now|today|again)\b")
_INNER_NEGATION = re.compile(r"\b(?:not|no|never)\b|n'?t\b")  # between a frame's words: "my tummy isn't swollen"
_MILD = re.compile(r"\b(?:slight|slightly|mild|mildly|low|low[- ]grade|little|bit of(?: a)?|touch of(?: a)?)\s*$")
_FILLER = frozenset(["a", "an", "the", "and", "or", "nor", "with", "i", "i'm", "im", "i've", "ive", "me", "my", "mine", "he", "he's", "his", "him", "she", "she's", "her", "it", "it's", "its", "they", "their", "them", "we", "our", "us", "you", "your", "is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had", "having", "do", "does", "did", "get", "got", "getting", "gets", "keep", "keeps", "kept", "also", "too", "very", "really", "quite", "bit", "lot", "lots", "of", "some", "any", "just", "since", "for", "from", "in", "on", "at", "to", "by", "today", "yesterday", "now", "this", "that", "these", "those", "week", "weeks", "day", "days", "last", "night", "morning", "all", "over", "again", "still", "feel", "feels", "feeling", "felt", "seem", "seems", "little", "much", "more", "so", "then", "there", "here", "dog", "cat", "puppy", "kitten", "mum", "dad", "son", "daughter", "child", "baby", "wife", "husband", "three", "two", "few", "times", "time", "since", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "been", "what", "which", "who", "think", "thought", "like", "bad", "really", "there", "there's", "theres", "fine", "except", "anything", "can't", "cant", "i'd", "he'd", "she'd", "up", "down", "out", "off"])
# a body part alone says where, not what: "my skin is" left over from "my skin is itching like mad"
_BODY = frozenset(["skin", "eyes", "eye", "head", "tummy", "belly", "stomach", "nose", "back", "chest", "legs", "leg", "ankles", "ankle", "arm", "arms", "feet", "foot", "throat", "ears", "ear", "face", "neck", "hands", "hand"])


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...

    def words(self) -> frozenset[str]: ...  # the whole words it knows (its tokenizer's), for spelling


@dataclass
class ParsedSymptoms:
    present: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # the text that was not understood
    # every symptom found: text (the words that said it), span ([start, end) in the input), id, negated,
    # method (phrase: the vocabulary's name; synonym: a curated phrasing; frame: a site and a descriptor near each
    # other; context: words that name it beside another symptom; embedding: the nearest phrase), score
    matches: list[dict[str, object]] = field(default_factory=list)


@dataclass
class _Hit:
    start: int
    end: int
    sid: str
    method: str
    score: float = 1.0
    parts: tuple[tuple[int, int], ...] = ()  # a frame's site and descriptor: the words between may negate it


class SymptomParser:
    def __init__(self, vocabulary: Vocabulary, encoder: Encoder | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        self.vocab = vocabulary
        self.encoder = encoder
        self.threshold = threshold
        names = {s.name.lower() for s in vocabulary.symptoms}
        phrases = sorted({(p.lower(), sid) for p, sid in vocabulary.phrases()}, key=lambda t: (-len(t[0]), t[0]))
        self._phrases = phrases  # longest first, so "high fever" wins over "fever"
        self._patterns = [(re.compile(rf"\b{re.escape(p)}\b"), sid, "phrase" if p in names else "synonym")
                          for p, sid in phrases]
        self._milder = {s.id: s.milder for s in vocabulary.symptoms if s.milder and s.milder in vocabulary}
        self._frames = [(_alternation(site), _alternation(desc), s.id) for s in vocabulary.symptoms
                        for site, desc in s.frames]
        self._emb: np.ndarray | None = None
        self._lexicon = sorted({w for p, _ in phrases for w in re.findall(r"[a-z]+", p)}
                               | {w for s in vocabulary.symptoms for f in s.frames for part in f for t in part
                                  for w in re.findall(r"[a-z]+", t)})
        self._known: frozenset[str] | None = None
        self._contexts = [(frozenset(said), frozenset(with_ids), s.id) for s in vocabulary.symptoms
                          for said, with_ids in s.contexts]
        self._spelled: dict[str, str | None] = {}

    def phrase_embeddings(self) -> np.ndarray:
        """The vocabulary's phrases embedded (once; what a text's unmatched words are compared with)."""
        if self._emb is None:
            assert self.encoder is not None
            self._emb = self.encoder.encode([p for p, _ in self._phrases])
        return self._emb

    def _correction(self, word: str) -> str | None:
        """The vocabulary word a misspelt ``word`` stands for, or None (a known word, or none or several as close)."""
        if word not in self._spelled:
            if self._known is None:
                assert self.encoder is not None
                self._known = self.encoder.words() | set(self._lexicon) | _FILLER | _BODY
            fixed = None
            if len(word) >= SPELLING_MIN_LETTERS and word not in self._known:
                edits = 1 if len(word) < 8 else 2
                near = process.extract(word, self._lexicon, scorer=Levenshtein.distance, score_cutoff=edits, limit=2)
                if near and (len(near) == 1 or near[1][1] > near[0][1]):
                    fixed = near[0][0]
            if len(self._spelled) >= SPELLING_CACHE:
                self._spelled.clear()
            self._spelled[word] = fixed
            return fixed
        return self._spelled[word]

    def _spell(self, low: str) -> tuple[str, Sequence[int]]:
        """``low`` with misspelt words replaced, and where each of its positions (and its end) lies in ``low``."""
        fixes = [(m, f) for m in re.finditer(r"[a-z]+", low)
                 if (f := self._correction(m.group(0))) is not None] if self.encoder is not None else []
        if not fixes:
            return low, range(len(low) + 1)
        parts: list[str] = []
        where: list[int] = []
        pos = 0
        for m, fixed in fixes:
            parts.append(low[pos : m.start()])
            where += range(pos, m.start())
            parts.append(fixed)
            where += [m.start()] * len(fixed)
            pos = m.end()
        parts.append(low[pos:])
        where += range(pos, len(low) + 1)
        return "".join(parts), where

    def parse(self, text: str) -> ParsedSymptoms:
        out = ParsedSymptoms()
        low, where = self._spell(text.lower().replace("\u2019", "'"))
        open_scope = False
        pending: list[tuple[int, int, str, bool]] = []  # leftover chunks for the encoder: span, text, negated
        for seg_text, start in _segments(low):
            hits = self._phrase_hits(seg_text)
            framed, replaced = self._frame_hits(seg_text, hits)
            hits = sorted([h for h in hits if h not in replaced] + framed, key=lambda h: h.start)
            blocked = _spans(_PSEUDO, seg_text) + [p for h in hits for p in (h.parts or ((h.start, h.end),))]
            cues = [(a, b) for a, b in _spans(_CUE, seg_text) if not _inside((a, b), blocked)]
            terms = [a for a, _ in _spans(_TERMINATOR, seg_text)]
            posts = [a for a, _ in _spans(_POST_CUE, seg_text)]
            carried = open_scope and bool(re.match(r"\s*(?:or|nor)\b", seg_text))

            def negated_at(at: int, *, cues: list[tuple[int, int]] = cues, terms: list[int] = terms,
                           posts: list[int] = posts, carried: bool = carried) -> bool:
                starts = [b for _, b in cues if b <= at] + ([0] if carried else [])
                if any(not any(s <= t < at for t in terms) for s in starts):
                    return True
                return any(p >= at for p in posts)

            for h in hits:
                inner = len(h.parts) == 2 and bool(_INNER_NEGATION.search(
                    _PSEUDO.sub(" ", seg_text[h.parts[0][1] : h.parts[1][0]])))
                a, b = where[start + h.start], where[start + h.end]
                self._add(out, h.sid, h.method, h.score, text[a:b], (a, b), inner or negated_at(h.start))
            last_cue = max((b for _, b in cues), default=-1 if not carried else 0)
            open_scope = last_cue >= 0 and not any(t >= last_cue for t in terms)
            for a, b, chunk in _leftovers(seg_text, hits, cues + _spans(_POST_CUE, seg_text)):
                pending.append((where[start + a], where[start + b], chunk, negated_at(a)))
        self._fallback(out, text, pending)
        return out

    def names_symptom(self, words: str) -> bool:
        """Whether ``words`` name one of the vocabulary's symptoms outright (a phrase or synonym; no encoder, no
        spelling correction: a rule, cheap enough for every request)."""
        return any(self._phrase_hits(seg) for seg, _ in _segments(words.lower().replace("\u2019", "'")))

    def _phrase_hits(self, seg: str) -> list[_Hit]:
        hits: list[_Hit] = []
        taken = seg
        for pat, sid, method in self._patterns:
            for m in pat.finditer(taken):
                sid_here = sid
                if sid in self._milder and _MILD.search(seg[: m.start()]):
                    sid_here = self._milder[sid]
                hits.append(_Hit(m.start(), m.end(), sid_here, method))
            taken = pat.sub(lambda m: " " * len(m.group(0)), taken)  # a word is used by one phrase only
        return sorted(hits, key=lambda h: h.start)

    def _frame_hits(self, seg: str, hits: list[_Hit]) -> tuple[list[_Hit], list[_Hit]]:
        """Site and descriptor pairs, nearest first, each descriptor used once; and the one-word phrase hits they
        replace. A descriptor is taken from what the phrases left, or is a one-word phrase that the site makes
        specific ("my throat has been really itchy": throat irritation, not itching); a site may serve a phrase too
        ("my eyes are red and watery")."""
        bare = {(h.start, h.end): h for h in hits if " " not in seg[h.start : h.end]}
        covered = [(h.start, h.end) for h in hits]
        have = {h.sid for h in hits}
        found = []
        for k, (site, desc, sid) in enumerate(self._frames):
            if sid in have:
                continue
            for a in site.finditer(seg):
                for b in desc.finditer(seg):
                    b_span = (b.start(), b.end())
                    if b_span not in bare and any(x < b_span[1] and b_span[0] < y for x, y in covered):
                        continue
                    first, second = sorted([(a.start(), a.end()), b_span])
                    if first[1] > second[0]:
                        continue
                    between = seg[first[1] : second[0]]
                    gap = len(re.findall(r"[a-z']+", between))
                    if gap <= FRAME_WINDOW and not _TERMINATOR.search(between):
                        found.append((gap, k, (a.start(), a.end()), b_span, sid))
        out: list[_Hit] = []
        replaced: list[_Hit] = []
        used_desc: set[tuple[int, int]] = set()
        for _, _, a_span, b_span, sid in sorted(found):
            if b_span in used_desc or any(sid == h.sid for h in out):
                continue
            used_desc.add(b_span)
            if b_span in bare:
                replaced.append(bare[b_span])
            parts = tuple(sorted([a_span, b_span]))
            sid_here = self._milder[sid] if sid in self._milder and _MILD.search(seg[: parts[0][0]]) else sid
            out.append(_Hit(parts[0][0], parts[1][1], sid_here, "frame", parts=parts))
        return out, replaced

    def _in_context(self, out: ParsedSymptoms, text: str,
                    pending: list[tuple[int, int, str, bool]]) -> list[tuple[int, int, str, bool]]:
        """The leftovers that a context does not explain (the ones it does are added)."""
        found = set(out.present) | set(out.absent)
        rest = []
        for a, b, chunk, neg in pending:
            content = {w for w in re.findall(r"[a-z']+", chunk) if w not in _FILLER and not _TERMINATOR.fullmatch(w)}
            fits = {sid for said, with_ids, sid in self._contexts if content and content <= said and found & with_ids}
            if len(fits) == 1:
                self._add(out, fits.pop(), "context", 1.0, text[a:b].strip(), (a, b), neg)
            else:
                rest.append((a, b, chunk, neg))
        return rest

    def _fallback(self, out: ParsedSymptoms, text: str, pending: list[tuple[int, int, str, bool]]) -> None:
        pending = self._in_context(out, text, pending)
        if not pending:
            return
        if self.encoder is None:
            out.unmapped += [text[a:b].strip() for a, b, _, _ in pending]
            return
        sims = self.encoder.encode([chunk for _, _, chunk, _ in pending]) @ self.phrase_embeddings().T
        for (a, b, chunk, neg), row in zip(pending, sims, strict=True):
            j = int(row.argmax())
            # one word alone ("tight", left from "swollen and tight") is close to many phrases: it must be closer
            if row[j] >= self.threshold + (SINGLE_WORD_MARGIN if " " not in chunk else 0.0):
                self._add(out, self._phrases[j][1], "embedding", float(row[j]), text[a:b].strip(), (a, b), neg)
            else:
                out.unmapped.append(text[a:b].strip())

    @staticmethod
    def _add(out: ParsedSymptoms, sid: str, method: str, score: float, said: str, span: tuple[int, int],
             negated: bool) -> None:
        target = out.absent if negated else out.present
        if sid not in target:
            target.append(sid)
        out.matches.append({"text": said, "span": list(span), "id": sid, "negated": negated, "method": method,
                            "score": round(score, 3)})


def _segments(text: str) -> list[tuple[str, int]]:
    out, pos = [], 0
    for m in _SEGMENT.finditer(text):
        out.append((text[pos : m.start()], pos))
        pos = m.end()
    out.append((text[pos:], pos))
    return [(s, p) for s, p in out if s.strip()]


def _alternation(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b")


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def _inside(span: tuple[int, int], blocked: list[tuple[int, int]]) -> bool:
    return any(a <= span[0] and span[1] <= b for a, b in blocked)


def _leftovers(seg: str, hits: list[_Hit], cues: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """The pieces of a segment not covered by a phrase or a (post-)cue, split at conjunctions, that still hold a
    content word: (start, end, the piece without filler words)."""
    mask = list(seg)
    for a, b in [(h.start, h.end) for h in hits] + cues:
        mask[a:b] = " " * (b - a)
    rest = _PSEUDO.sub(lambda m: " " * len(m.group(0)), "".join(mask))
    out = []
    for m in re.finditer(r"(?:(?:and|with|but|or|nor|then|plus)\s+)*([^\s].*?)(?=\s+\b(?:and|with|but|or|nor|then|"
                         r"plus)\b|\s{2,}|$)", rest):
        words = re.findall(r"[a-z']+", m.group(1))
        content = [w for w in words if w not in _FILLER and not _TERMINATOR.fullmatch(w)]
        if any(w not in _BODY for w in content) and (len(content) > 1 or len(content[0]) > 3):
            out.append((m.start(1), m.end(1), " ".join(words)))
    return out
