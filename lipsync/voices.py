"""Character voices: a natural (Kokoro) voice or espeak-ng, and deterministic auto-casting.

Every voice carries espeak-ng settings (language, variant, pitch, rate): they speak when the
voice's backend is ``espeak``, and they are the fallback of a natural voice, for languages
Kokoro does not speak (Korean, ...) or when its model is not installed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from lipsync.given_names import named_female

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

BACKENDS = ("espeak", "kokoro")
MIN_SPEED, MAX_SPEED = 0.5, 2.0

# Kokoro v1.0 voices by accent (a: American, b: British, z: Mandarin) and sex (f, m). A voice id
# speaks any of the natural languages: the first letter picks the accent, so a character's
# "af_heart" speaks Mandarin with the Mandarin female voice that id maps to (``natural_voice``).
NATURAL_VOICES: dict[str, tuple[str, ...]] = {
    "af": ("af_heart", "af_bella", "af_nicole", "af_aoede", "af_kore", "af_sarah", "af_nova",
           "af_alloy", "af_sky", "af_jessica", "af_river"),
    "am": ("am_michael", "am_fenrir", "am_puck", "am_echo", "am_eric", "am_liam", "am_onyx",
           "am_adam", "am_santa"),
    "bf": ("bf_emma", "bf_isabella", "bf_alice", "bf_lily"),
    "bm": ("bm_george", "bm_fable", "bm_lewis", "bm_daniel"),
    "zf": ("zf_xiaoxiao", "zf_xiaoyi", "zf_xiaobei", "zf_xiaoni"),
    "zm": ("zm_yunxi", "zm_yunjian", "zm_yunyang", "zm_yunxia"),
}
# Kokoro's accent letter for each language its natural voice speaks (espeak-ng names).
NATURAL_ACCENTS: dict[str, str] = {"en-us": "a", "en": "b", "cmn": "z"}
# Auto-cast pools: the clearest voices (Kokoro's own grades C or better), by sex and age.
_AUTO_POOLS: dict[tuple[bool, bool], tuple[str, ...]] = {
    (True, False): ("af_heart", "af_bella", "af_aoede", "af_kore", "af_sarah", "af_nova", "af_sky"),
    (False, False): ("am_fenrir", "am_michael", "am_puck", "am_echo", "am_eric", "am_liam"),
    (True, True): ("af_sarah", "af_alloy", "af_river", "af_nicole"),
    (False, True): ("am_michael", "am_onyx", "am_adam", "am_eric"),
}


@dataclass(frozen=True, slots=True)
class VoiceSpec:
    """How one character sounds.

    language: an espeak-ng voice/language name ("en-us", "cmn", "ko", ...).
    variant: an espeak-ng variant ("m1".."m7", "f1".."f5") or "" for the language default.
    pitch: espeak-ng base pitch, 0..100 (50 is the default).
    pitch_range: espeak-ng pitch range, 0..100 (50 is the default; 0 is monotone).
    rate_wpm: speaking rate in words per minute, 80..450.
    backend: "kokoro" (a natural voice, falling back to the espeak-ng settings above where it
        cannot speak) or "espeak".
    voice_id: the Kokoro voice, e.g. "af_heart", or an equal blend of up to three joined by
        "+" ("af_bella+af_sky"); "" with the espeak backend.
    speed: the natural voice's speed, 0.5..2.0.
    """

    language: str = "en-us"
    variant: str = ""
    pitch: int = 50
    pitch_range: int = 50
    rate_wpm: int = 170
    backend: str = "espeak"
    voice_id: str = ""
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"voice backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "kokoro":
            natural_parts(self.voice_id)
        elif self.voice_id:
            raise ValueError(f"voice_id {self.voice_id!r} needs the kokoro backend (the espeak backend has none)")
        if isinstance(self.speed, bool) or not isinstance(self.speed, int | float) or not MIN_SPEED <= self.speed <= MAX_SPEED:
            raise ValueError(f"voice speed must be {MIN_SPEED}..{MAX_SPEED}, got {self.speed!r}")
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

    def as_espeak(self) -> VoiceSpec:
        """The same voice on the espeak backend (its fallback, or an instant reply)."""
        return VoiceSpec(
            language=self.language, variant=self.variant, pitch=self.pitch,
            pitch_range=self.pitch_range, rate_wpm=self.rate_wpm,
        )


def natural_parts(voice_id: str) -> tuple[str, ...]:
    """The Kokoro voices a voice id names ("af_heart", "af_bella+af_sky"); a clear error otherwise."""
    known = {v for group in NATURAL_VOICES.values() for v in group}
    parts = tuple(voice_id.split("+"))
    if not 1 <= len(parts) <= 3 or any(p not in known for p in parts):
        raise ValueError(
            f"unknown natural voice {voice_id!r}: give a Kokoro voice such as 'af_heart', or up to three "
            f"joined by '+' ('af_bella+af_sky'); voices: {', '.join(sorted(known))}"
        )
    return parts


def natural_voice(voice: VoiceSpec) -> str | None:
    """The Kokoro voice id that speaks ``voice`` in its language, or None where espeak-ng speaks.

    A voice id of another accent maps to one of the same sex in the voice's language, chosen by
    the id (so a character always gets the same Mandarin voice)."""
    accent = NATURAL_ACCENTS.get(voice.language)
    if voice.backend != "kokoro" or accent is None:
        return None
    mapped = []
    for part in natural_parts(voice.voice_id):
        if part[0] == accent:
            mapped.append(part)
            continue
        pool = NATURAL_VOICES[accent + part[1]]
        mapped.append(pool[hashlib.sha256(part.encode()).digest()[0] % len(pool)])
    return "+".join(dict.fromkeys(mapped))


def normalise_language(language: str) -> str:
    """Map a friendly language name to an espeak-ng voice name (unknown names pass through)."""
    return LANGUAGE_ALIASES.get(language.strip().lower(), language.strip().lower())


def name_digest(name: str) -> bytes:
    """Stable bytes for a character name: the same name (any case) always gives the same digest."""
    return hashlib.sha256(name.strip().upper().encode("utf-8")).digest()


def auto_voice(name: str, *, language: str = "en-us", mature: bool = False, natural: bool = True) -> VoiceSpec:
    """A distinct voice chosen deterministically from the name.

    Sex comes from the name's digest (``auto_female``); ``mature`` picks from the older-sounding
    natural voices. The natural voice is a blend of two of the pool's voices, so an auto-cast
    character never sounds like a built-in one. ``natural=False``: espeak-ng only."""
    d = name_digest(name)
    female = auto_female(name)
    variants = FEMALE_VARIANTS if female else MALE_VARIANTS
    return VoiceSpec(
        language=normalise_language(language),
        variant=variants[d[1] % len(variants)],
        pitch=(58 + d[2] % 22) if female else (30 + d[2] % 22),
        pitch_range=40 + d[3] % 30,
        rate_wpm=155 + d[4] % 35,
        backend="kokoro" if natural else "espeak",
        voice_id=auto_natural_voice(name, female=female, mature=mature) if natural else "",
        speed=auto_speed(name) if natural else 1.0,
    )


def auto_natural_voice(name: str, *, female: bool, mature: bool = False) -> str:
    """A natural voice for ``name``: an equal blend of two voices of the pool for that sex and
    age (older-sounding when ``mature``), chosen from the name's digest."""
    d = name_digest(name)
    pool = _AUTO_POOLS[(female, mature)]
    first = pool[d[24] % len(pool)]
    second = pool[(d[24] + 1 + d[25] % (len(pool) - 1)) % len(pool)]
    return f"{first}+{second}"


def auto_speed(name: str) -> float:
    """A natural voice's speed for ``name``, 0.92..1.08."""
    return round(0.92 + (name_digest(name)[26] % 17) / 100, 2)


def auto_female(name: str) -> bool:
    """Whether an auto-cast ``name`` is a woman: a common given name or a title says
    (``lipsync.given_names``: BOB is a man, MRS. HALL a woman); any other name, its digest
    (the same name, the same answer)."""
    named = named_female(name)
    return name_digest(name)[0] % 2 == 0 if named is None else named


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
    return replace(voice, language=implied)
