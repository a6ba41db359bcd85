"""espeak-ng through ctypes: PCM plus phoneme and word events from one synthesis run.

The library comes from the ``espeakng-loader`` wheel; no subprocess, nothing downloaded.
Every utterance starts from a freshly loaded private copy of the library, so the same text in
the same voice always gives the same samples, whatever was said before and by whom.
espeak-ng keeps global state (current voice, parameters, the synth callback), so one
``Espeak`` object owns the library and serialises every call with a lock. Events carry the
sample position inside the same PCM they arrive with, so phonemes and audio line up exactly.
"""

from __future__ import annotations

import _ctypes
import ctypes
import functools
import logging
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipsync.voices import VoiceSpec

logger = logging.getLogger(__name__)

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_EE_OK = 0
_PHONEMES_IPA = 0x02
_PHONEMES_TIE = 0x80  # join the letters of one phoneme with the character in bits 8-23
_EE_NOT_FOUND = 2

MAX_TEXT_CHARS = 5_000


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or failed to synthesise."""


class UnknownLanguageError(ValueError):
    """The voice's language (or variant) is not one espeak-ng knows."""


@dataclass(frozen=True, slots=True)
class PhonemeEvent:
    """One phoneme (IPA) starting at ``start_sample`` of the speech's own PCM."""

    phoneme: str
    start_sample: int


@dataclass(frozen=True, slots=True)
class WordEvent:
    """One word: characters ``[text_start, text_start + text_length)`` of the text (0-based)."""

    text_start: int
    text_length: int
    start_sample: int


@dataclass(frozen=True, slots=True)
class Speech:
    """Mono int16 PCM at ``sample_rate_hz`` with the events that happened in it."""

    pcm: np.ndarray
    sample_rate_hz: int
    phonemes: tuple[PhonemeEvent, ...]
    words: tuple[WordEvent, ...]

    @property
    def n_samples(self) -> int:
        return int(self.pcm.shape[0])


_RAND_SEED = 1

BlockSink = Callable[[np.ndarray, list[PhonemeEvent], list[WordEvent]], bool]
"""Receives (pcm block, phonemes starting in it, words starting in it); returns True to abort."""


def _private_copy(library_path: str) -> tuple[str, Callable[[], None]]:
    """A copy of the library of our own: the path to load it by, and what removes the copy.

    In memory where the system allows (Linux ``memfd``): a server stopped by a signal never runs
    its exit handlers, and a copy on disk stayed in the temporary folder, 0.65 MB a start.
    Elsewhere a temporary folder."""
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("talkie-espeak", os.MFD_CLOEXEC)
        with open(library_path, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
            shutil.copyfileobj(src, dst)
        return f"/proc/self/fd/{fd}", functools.partial(os.close, fd)
    folder = tempfile.mkdtemp(prefix="talkie-espeak-")
    path = str(Path(folder) / Path(library_path).name)
    shutil.copyfile(library_path, path)
    return path, functools.partial(shutil.rmtree, folder, ignore_errors=True)


class _Loaded:
    """The library as one ``Espeak`` loaded it; unloaded before its copy is removed.

    A later copy may get the same path (a reused file descriptor), and the dynamic loader finds
    a library by its path: left loaded, the old library, in whatever state it was left, would be
    handed to the new ``Espeak`` (seen as a batch worker's second scene sounding different)."""

    __slots__ = ("lib",)

    def __init__(self) -> None:
        self.lib: ctypes.CDLL | None = None

    def unload(self) -> None:
        if self.lib is not None:
            self.lib.espeak_Terminate()
            _ctypes.dlclose(self.lib._handle)
            self.lib = None


def _release(loaded: _Loaded, remove_copy: Callable[[], None]) -> None:
    loaded.unload()
    remove_copy()


class Espeak:
    """The espeak-ng library, loaded once and used from any thread (calls are serialised)."""

    def __init__(self, *, library_path: str | None = None, data_dir: str | None = None) -> None:
        if library_path is None or data_dir is None:
            import espeakng_loader

            library_path = library_path or espeakng_loader.get_library_path()
            data_dir = data_dir or espeakng_loader.get_data_path()
        # A private copy of the library: dlopen shares one copy (and its static state) between
        # every loader of the same file, so only a copy of our own can be truly reloaded.
        self._library_path, remove_copy = _private_copy(library_path)
        self._loaded = _Loaded()
        weakref.finalize(self, _release, self._loaded, remove_copy)
        # espeak_Initialize wants the folder that *contains* espeak-ng-data.
        self._home = str(Path(data_dir).parent).encode()
        self._lock = threading.Lock()
        self._sink: BlockSink | None = None
        # Keep a reference: ctypes callbacks must outlive every call into the library.
        self._callback = _SynthCallback(self._on_block)
        self._voice: VoiceSpec | None = None
        self._dirty = False
        self._translated = False
        with self._lock:
            self._load()

    def _load(self) -> None:
        """Load (or reload) the library and initialise it; call with the lock held.

        espeak-ng's wave generator keeps static state (pitch flutter, phase) that carries from
        one utterance into the next and that no API call resets, so the same text would come
        out a few samples different depending on what was said before. Unloading and loading
        the library again (well under a millisecond) gives every utterance the same start.
        ``espeak_Terminate`` first: what ``espeak_Initialize`` allocated (phoneme tables,
        dictionary, voice, buffers: 0.84 MB) is on the process heap, and unloading the library
        does not free it.
        """
        self._loaded.unload()
        try:
            lib = ctypes.CDLL(self._library_path)
        except OSError as exc:
            raise EspeakError(f"cannot load espeak-ng from {self._library_path}: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Terminate.argtypes = []
        lib.espeak_Terminate.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 100, self._home, options)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed with data under {self._home.decode()}")
        self.sample_rate_hz = int(rate)
        lib.espeak_SetSynthCallback(self._callback)
        self._loaded.lib = lib
        self._voice = None
        self._dirty = False
        self._translated = False

    @property
    def _lib(self) -> ctypes.CDLL | None:
        return self._loaded.lib

    def _on_block(self, wav: ctypes.Array, n: int, events: ctypes.Array) -> int:  # type: ignore[type-arg]
        phonemes: list[PhonemeEvent] = []
        words: list[WordEvent] = []
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            sample = round(ev.audio_position * self.sample_rate_hz / 1000)
            if ev.type == _EVENT_PHONEME:
                name = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                phonemes.append(PhonemeEvent(phoneme=name, start_sample=sample))
            elif ev.type == _EVENT_WORD:
                words.append(WordEvent(ev.text_position - 1, ev.length, sample))
            i += 1
        block = np.ctypeslib.as_array(wav, shape=(n,)).copy() if wav and n > 0 else np.zeros(0, np.int16)
        assert self._sink is not None
        return 1 if self._sink(block, phonemes, words) else 0

    def _set_voice(self, voice: VoiceSpec) -> None:
        assert self._lib is not None
        if voice == self._voice:
            return
        err = self._lib.espeak_SetVoiceByName(voice.espeak_name.encode())
        if err != _EE_OK:
            self._voice = None
            raise UnknownLanguageError(
                f"espeak-ng has no voice {voice.espeak_name!r}: use a language such as "
                "'en-us', 'en' (British), 'cmn' (Mandarin) or 'ko' (Korean), and variants m1..m7 / f1..f5"
            )
        self._lib.espeak_SetParameter(_PARAM_RATE, voice.rate_wpm, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, voice.pitch_range, 0)
        self._lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
        self._voice = voice

    def stream(self, text: str, voice: VoiceSpec, sink: BlockSink) -> None:
        """Synthesise ``text``, handing each PCM block (about 100 ms) to ``sink`` as it is made.

        Blocks the calling thread (run it in a worker); ``sink`` returning True stops synthesis.
        Event sample positions count from the start of this text's PCM.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            if self._dirty or self._translated:
                self._load()
            self._set_voice(voice)
            assert self._lib is not None
            self._sink = sink
            self._dirty = True
            # The voice's jitter comes from the C library's rand(), which espeak_Initialize seeds
            # from the clock's second and anything else in the process may draw from: seeded
            # here, the same line gives the same samples in any process, whatever ran before.
            self._lib.espeak_ng_SetRandSeed(_RAND_SEED)
            try:
                err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            finally:
                self._sink = None
            if err != _EE_OK:
                raise EspeakError(f"espeak_Synth failed with code {err} for voice {voice.espeak_name!r}")

    def synthesize(self, text: str, voice: VoiceSpec) -> Speech:
        """Synthesise all of ``text`` and return its PCM with phoneme and word events."""
        blocks: list[np.ndarray] = []
        phonemes: list[PhonemeEvent] = []
        words: list[WordEvent] = []

        def sink(block: np.ndarray, ph: list[PhonemeEvent], wd: list[WordEvent]) -> bool:
            blocks.append(block)
            phonemes.extend(ph)
            words.extend(wd)
            return False

        self.stream(text, voice, sink)
        pcm = np.concatenate(blocks) if blocks else np.zeros(0, np.int16)
        return Speech(pcm=pcm, sample_rate_hz=self.sample_rate_hz, phonemes=tuple(phonemes), words=tuple(words))

    def text_to_phonemes(self, text: str, language: str, *, tie: str = "^") -> str:
        """The IPA of ``text`` as espeak-ng reads it in ``language``: words apart by spaces, stress
        marks, and ``tie`` between the letters of one phoneme ("a^ɪ"). Punctuation is dropped.

        The grapheme-to-phoneme half of espeak-ng alone, for another synthesiser to speak."""
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        buffer = ctypes.c_char_p(text.encode("utf-8"))
        pointer = ctypes.pointer(buffer)
        mode = _PHONEMES_IPA | _PHONEMES_TIE | (ord(tie) << 8)
        pieces: list[str] = []
        with self._lock:
            if self._dirty:  # after a synthesis: translating needs no reload, but starts clean
                self._load()
            self._set_voice(VoiceSpec(language=language))
            assert self._lib is not None
            self._translated = True  # the next synthesis (not the next translation) starts afresh
            while pointer.contents.value:
                out = self._lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, mode)
                if out:
                    pieces.append(out.decode("utf-8", "replace"))
        return " ".join(p.strip() for p in pieces if p.strip())
