"""IPA phoneme names (espeak-ng's, and the natural voice's in the same form) → visemes.

espeak-ng reports phonemes as IPA strings with stress and length marks ("ˈaɪ", "ɜː") and, for
some languages, its own ASCII additions ("ts.h" for Mandarin aspirated retroflex). We strip the
marks (and Mandarin tone arrows), map diphthongs to two visemes, and fall back by the first recognisable symbol.
"""

from __future__ import annotations

from lipsync.visemes import VISEME_INDEX

_MARKS = str.maketrans("", "", "ˈˌːˑ.-_'̩̯̃ʰʲʷ")

# First matching prefix wins; longer keys are tried first.
_PREFIX_VISEME: dict[str, str] = {
    # bilabials
    "p": "PP", "b": "PP", "m": "PP", "ɓ": "PP", "ɸ": "FF", "β": "FF",
    # labiodentals
    "f": "FF", "v": "FF", "ʋ": "FF", "ɱ": "FF",
    # dentals
    "θ": "TH", "ð": "TH",
    # alveolar stops and flaps
    "t": "DD", "d": "DD", "ɾ": "DD", "ʈ": "DD", "ɖ": "DD", "ʔ": "DD",
    # velars, uvulars, glottal
    "k": "kk", "g": "kk", "ɡ": "kk", "ŋ": "kk", "q": "kk", "x": "kk", "ɣ": "kk", "χ": "kk",
    "h": "kk", "ɦ": "kk", "c": "kk", "ɟ": "kk",
    # postalveolar and alveolo-palatal affricates/fricatives (tʃ, dʒ, tɕ, Mandarin "ts." etc.)
    "tʃ": "CH", "dʒ": "CH", "tɕ": "CH", "dʑ": "CH", "ʃ": "CH", "ʒ": "CH", "ɕ": "CH", "ʑ": "CH",
    "ʂ": "CH", "ʐ": "CH", "tʂ": "CH",
    # sibilants
    "s": "SS", "z": "SS", "ts": "SS", "dz": "SS",
    # nasals and laterals
    "n": "nn", "l": "nn", "ɲ": "nn", "ɳ": "nn", "ʎ": "nn", "ɫ": "nn", "ɭ": "nn",
    # rhotics
    "ɹ": "RR", "r": "RR", "ɚ": "RR", "ɝ": "RR", "ɻ": "RR", "ʁ": "RR", "ʀ": "RR",
    # open vowels
    "a": "aa", "ɑ": "aa", "æ": "aa", "ɐ": "aa", "ʌ": "aa", "ɒ": "oh",
    # mid front vowels
    "e": "E", "ɛ": "E", "ɜ": "E", "ə": "E", "œ": "E", "ø": "E",
    # close front vowels and glides
    "i": "ih", "ɪ": "ih", "ɨ": "ih", "ᵻ": "ih", "j": "ih", "ɯ": "ih", "ɤ": "E", "y": "ou",
    # back rounded vowels
    "o": "oh", "ɔ": "oh", "ɵ": "oh",
    "u": "ou", "ʊ": "ou", "w": "ou", "ʉ": "ou", "ɥ": "ou",
}
_KEYS_LONGEST_FIRST = sorted(_PREFIX_VISEME, key=len, reverse=True)
_VOWEL_START = set("aɑæɐʌɒeɛɜəœøiɪɨᵻɯɤyoɔɵuʊʉ")


_RETROFLEX = (("ts.", "tʂ"), ("s.", "ʂ"), ("z.", "ʐ"))


def clean(phoneme: str) -> str:
    """The phoneme without stress, length and other marks ("ts." is espeak's retroflex tʂ)."""
    for ascii_form, ipa in _RETROFLEX:
        phoneme = phoneme.replace(ascii_form, ipa)
    return phoneme.translate(_MARKS).strip()


def visemes_for_phoneme(phoneme: str) -> tuple[int, ...]:
    """Viseme indices for one phoneme: () for silence/pause, two for a diphthong ("aɪ" → aa, ih)."""
    p = clean(phoneme)
    out: list[int] = []
    while p and len(out) < 2:
        for key in _KEYS_LONGEST_FIRST:
            if p.startswith(key):
                out.append(VISEME_INDEX[_PREFIX_VISEME[key]])
                p = p[len(key):]
                break
        else:
            p = p[1:]  # an unknown symbol: skip it
            continue
        # Only vowel sequences (diphthongs) go on to a second viseme.
        if not (p and p[0] in _VOWEL_START | {"ɹ", "ɚ"} and _is_vowel_viseme(out[-1])):
            break
    # Collapse a repeated viseme ("ii").
    if len(out) == 2 and out[0] == out[1]:
        out = out[:1]
    return tuple(out)


def _is_vowel_viseme(index: int) -> bool:
    return index in {VISEME_INDEX[v] for v in ("aa", "E", "ih", "oh", "ou", "RR")}
