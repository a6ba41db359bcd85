"""Character voices: espeak-ng language, variant, pitch and rate, and deterministic auto-casting."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# espeak-ng voice names for the languages we promise; any other espeak-ng voice name also works.
LANGUAGE_ALIASES: dict[str, str] = {
    "en": "en-us",
    "english": "en-us",
    "en-us": "en-us",
    "en-gb": "en",  # espeak-ng's British English voice is "en"
    "british": "en",
    "zh": "cmn",
    "cmn": "cmn",
    "mandarin": "cmn",
    "chinese": "cmn",
    "ko": "ko",
    "korean": "ko",
    "fr": "fr",
    "de": "de",
    "es": "es",
    "ja": "ja",
}

MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")


@dataclass(frozen=True, slots=True)
class VoiceSpec:
    """How one character sounds.

    language: an espeak-ng voice/language name ("en-us", "cmn", "ko", ...).
    variant: an espeak-ng variant ("m1".."m7", "f1".."f5") or "" for the language default.
    pitch: espeak-ng base pitch, 0..100 (50 is the default).
    pitch_range: espeak-ng pitch range, 0..100 (50 is the default; 0 is monotone).
    rate_wpm: speaking rate in words per minute, 80..450.
    """

    language: str = "en-us"
    variant: str = ""
    pitch: int = 50
    pitch_range: int = 50
    rate_wpm: int = 170

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 100:
            raise ValueError(f"voice pitch must be 0..100, got {self.pitch}")
        if not 0 <= self.pitch_range <= 100:
            raise ValueError(f"voice pitch_range must be 0..100, got {self.pitch_range}")
        if not 80 <= self.rate_wpm <= 450:
            raise ValueError(f"voice rate_wpm must be 80..450, got {self.rate_wpm}")

    @property
    def espeak_name(self) -> str:
        """Voice name as espeak_SetVoiceByName expects it, e.g. "en-us+f3"."""
        return f"{self.language}+{self.variant}" if self.variant else self.language


def normalise_language(language: str) -> str:
    """Map a friendly language name to an espeak-ng voice name (unknown names pass through)."""
    return LANGUAGE_ALIASES.get(language.strip().lower(), language.strip().lower())


def name_digest(name: str) -> bytes:
    """Stable bytes for a character name: the same name (any case) always gives the same digest."""
    return hashlib.sha256(name.strip().upper().encode("utf-8")).digest()


def auto_voice(name: str, *, language: str = "en-us") -> VoiceSpec:
    """A distinct voice chosen deterministically from the name."""
    d = name_digest(name)
    female = d[0] % 2 == 0
    variants = FEMALE_VARIANTS if female else MALE_VARIANTS
    return VoiceSpec(
        language=normalise_language(language),
        variant=variants[d[1] % len(variants)],
        pitch=(58 + d[2] % 22) if female else (30 + d[2] % 22),
        pitch_range=40 + d[3] % 30,
        rate_wpm=155 + d[4] % 35,
    )


def script_language(text: str) -> str | None:
    """The language a text's writing system implies (Hangul → "ko", Han → "cmn", kana → "ja"), else None."""
    hangul = han = kana = 0
    for ch in text:
        code = ord(ch)
        if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            hangul += 1
        elif 0x3040 <= code <= 0x30FF:
            kana += 1
        elif 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
            han += 1
    if hangul and hangul >= han:
        return "ko"
    if kana:
        return "ja"
    if han:
        return "cmn"
    return None


def voice_for_text(voice: VoiceSpec, text: str) -> VoiceSpec:
    """``voice`` speaking the language the text is written in, when its writing system says so.

    A character cast as English who is given a Mandarin line speaks Mandarin with the same
    variant, pitch and rate, so the line is intelligible rather than spelled out.
    """
    implied = script_language(text)
    if implied is None or voice.language.split("-")[0] in {implied, "zh" if implied == "cmn" else implied}:
        return voice
    return VoiceSpec(
        language=implied,
        variant=voice.variant,
        pitch=voice.pitch,
        pitch_range=voice.pitch_range,
        rate_wpm=voice.rate_wpm,
    )
