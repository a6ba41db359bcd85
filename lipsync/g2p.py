"""Text → Kokoro phonemes, clause by clause: English through espeak-ng, Mandarin through misaki.

Why these two (measured on this 2-core machine, see README "Natural voices"):
- English: espeak-ng's IPA through the binding talkie already has, rewritten into Kokoro's
  symbols with the table misaki itself uses for words its lexicon lacks (``E2M`` below). About
  0.1 ms a line, nothing more to install; misaki's own English path wants spaCy and a language
  model (its ``[en]`` extra pulls several GB).
- Mandarin: misaki's Chinese path (jieba word splitting, pypinyin readings, cn2an numbers; a
  few MB, 0.3 ms a line after a 0.5 s dictionary load). espeak-ng's Mandarin reads characters its
  dictionary lacks as English ("哪儿" came out "nar five") and writes tones as digits, which
  Kokoro was never trained on; misaki writes Kokoro's tone arrows.

A line is split after each punctuation mark (``, ; : . ! ?`` and the Chinese ones): the natural
voice speaks clause by clause, and each clause ends with its mark, which is what gives the
model its pause and intonation.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from lipsync.espeak import Espeak
from lipsync.kokoro import VOCAB

logger = logging.getLogger(__name__)

# Languages the natural voice speaks, by espeak-ng language name → Kokoro's accent letter.
NATURAL_LANGUAGES: dict[str, str] = {"en-us": "a", "en": "b", "cmn": "z"}

_PUNCTUATION = {
    ",": ",", ";": ";", ":": ":", ".": ".", "!": "!", "?": "?", "…": "…", "—": "—",
    "，": ",", "、": ",", "；": ";", "：": ":", "。": ".", "！": "!", "？": "?",
}
# A clause ends after a run of punctuation (and the quote or bracket that closes it) followed by
# a space or the end ("3.5" and "e.g." inside a word do not end one), after a dash, or after a
# Chinese mark; not after a title such as "Mr.".
_CLAUSE_END = re.compile(
    r"(?<!\b[A-Z])(?<!\be\.g)(?<!\bi\.e)(?<!\bMrs)(?<!\bMs)(?<!\bMr)(?<!\bDr)(?<!\bSt)(?<!\bJr)(?<!\bSr)(?<!\bvs)(?<!\betc)"
    r"[,;:.!?…]+[\"'”’)]*(?=\s|$)\s*|—\s*|[，、；：。！？]+[”’）」』]*\s*"
)
_SENTENCE_MARKS = {".", "!", "?", "…"}
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z' \-]*[A-Za-z]|[A-Za-z]")

# espeak-ng IPA → Kokoro symbols (misaki 0.9.4 ``EspeakFallback.E2M``), longest first.
_E2M: tuple[tuple[str, str], ...] = tuple(sorted({
    "ʔˌn\u0329": "ʔn", "ʔn\u0329": "ʔn", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A",
    "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ",
    "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "\u0303": "",
}.items(), key=lambda kv: -len(kv[0])))
_SYLLABIC = re.compile(r"(\S)\u0329")


@dataclass(frozen=True, slots=True)
class Clause:
    """One clause of a line: its text and its Kokoro phonemes (ending with its punctuation)."""

    text: str
    phonemes: str

    @property
    def ends_sentence(self) -> bool:
        return bool(self.phonemes) and self.phonemes[-1] in _SENTENCE_MARKS


def split_clauses(text: str) -> list[str]:
    """``text`` cut after each run of punctuation; every piece keeps its marks."""
    pieces: list[str] = []
    start = 0
    for match in _CLAUSE_END.finditer(text):
        piece = text[start : match.end()].strip()
        if piece:
            pieces.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


def english_from_ipa(ipa: str, *, british: bool) -> str:
    """espeak-ng IPA (with ``^`` ties) → Kokoro's English phonemes, as misaki rewrites them."""
    ps = ipa
    if british:
        ps = ps.replace("e^ə", "ɛː").replace("iə", "ɪə").replace("ə^ʊ", "Q")
    for old, new in _E2M:
        ps = ps.replace(old, new)
    ps = _SYLLABIC.sub(r"ᵊ\1", ps).replace("\u0329", "")
    if not british:
        ps = ps.replace("o^ʊ", "O").replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə").replace("ː", "")
    ps = ps.replace("o", "ɔ").replace("ɾ", "T").replace("ʔ", "t")
    return ps.replace("^", "")


def _keep_vocab(phonemes: str) -> str:
    return "".join(ch for ch in phonemes if ch in VOCAB)


class Phonemizer:
    """Clauses of Kokoro phonemes for a line in English (American or British) or Mandarin.

    Thread-safe; misaki's Chinese path loads on first use (or ``warm_up``), once."""

    def __init__(self, *, espeak: Espeak) -> None:
        self._espeak = espeak
        self._zh: Any = None
        self._zh_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the Chinese dictionaries now rather than on the first Mandarin line (~0.5 s)."""
        self._mandarin("你好")

    def clauses(self, text: str, language: str) -> list[Clause]:
        """The clauses of ``text`` with their phonemes; clauses that hold nothing to say are left out."""
        if language not in NATURAL_LANGUAGES:
            raise ValueError(f"the natural voice speaks {', '.join(NATURAL_LANGUAGES)}, not {language!r}")
        out: list[Clause] = []
        for piece in split_clauses(text):
            body = piece.rstrip("\"'”’)）」』 ")
            marks = ""
            while body and body[-1] in _PUNCTUATION:
                marks = _PUNCTUATION[body[-1]] + marks
                body = body[:-1]
            words = self._mandarin(body) if language == "cmn" else self._english(body, british=language == "en")
            words = _keep_vocab(words).strip()
            if not any(ch not in _PUNCTUATION.values() and ch != " " for ch in words):
                continue
            out.append(Clause(text=piece, phonemes=words + marks[:2]))
        return out

    def _english(self, text: str, *, british: bool) -> str:
        if not text.strip():
            return ""
        ipa = self._espeak.text_to_phonemes(text, "en" if british else "en-us")
        return english_from_ipa(ipa, british=british)

    def _mandarin(self, text: str) -> str:
        """Chinese (characters, digits) through misaki, Kokoro's own Chinese G2P; Latin words
        through espeak-ng's English."""
        parts: list[str] = []
        pos = 0
        for match in _LATIN_RUN.finditer(text):
            parts.append(self._chinese(text[pos : match.start()]))
            parts.append(self._english(match.group(), british=False))
            pos = match.end()
        parts.append(self._chinese(text[pos:]))
        return " ".join(p.strip() for p in parts if p.strip())

    def _chinese(self, text: str) -> str:
        return str(self._zh_g2p()(text)[0]) if text.strip() else ""

    def _zh_g2p(self) -> Any:
        with self._zh_lock:
            if self._zh is None:
                try:
                    import jieba
                    from misaki.zh import ZHG2P
                except ImportError as exc:
                    from lipsync.kokoro import ModelMissingError

                    raise ModelMissingError(
                        f"Mandarin natural voices need misaki[zh] (jieba, pypinyin, cn2an): {exc}; run ./dev"
                    ) from None
                jieba.setLogLevel(logging.WARNING)
                self._zh = ZHG2P()
            return self._zh
