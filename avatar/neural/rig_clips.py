"""Training data from the rig: face crops of a built-in character speaking espeak-ng lines.

For each line the character is drawn alone in a ``frame_px`` square by the same ``Compositor`` and
``SceneDirector`` the renderer uses (idle head motion included), frame k with the mouth of the
utterance's viseme weights for frame k. Around the character's mouth box (``Compositor.mouth_boxes``,
which already allows for head motion) a square face region is cut, resized to the model's
``crop_px``; the mouth box itself, in crop pixels, is the mouth mask. The reference is the same
region of the rest pose (closed mouth), and the drive is ``viseme_windows`` of the mouth track, so
row k of the dataset is frame k of the clip.

The face regions are cut with ``lipsync.neural.regions``, as the neural renderer cuts them, so
training and inference see exactly the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from avatar.pose import Pose
from avatar.scene import Compositor, SceneLayout
from avatar.spec import CharacterSpec
from lipsync.neural.data import FaceClipDataset, viseme_windows
from lipsync.neural.regions import FaceRegion, crop_regions, to_u8
from lipsync.speech import SpeechEngine
from lipsync.voices import VoiceSpec

TRAINING_LINES: tuple[str, ...] = (
    "Where were you last night?",
    "At the harbour, watching the boats come in.",
    "All night? I waited for hours.",
    "Yes, and I would do it again.",
    "Please pass me the bread and the butter.",
    "The quick brown fox jumps over the lazy dog.",
    "Open the window, it is far too warm in here.",
    "We should leave before the rain starts.",
    "Who told you about the meeting on Monday?",
    "I think the answer is somewhere in the old papers.",
    "Oh no, the milk boiled over again!",
    "Maybe we can fix it together tomorrow morning.",
    "Five, four, three, two, one, go!",
    "She sells sea shells by the sea shore.",
    "Really? You never told me that.",
    "Good evening, and welcome to the news at nine.",
    "My favourite food is warm pumpkin soup.",
    "Fetch the map, we are going on a voyage.",
    "Wow, what a view from up here.",
    "Each of us has a choice to make.",
    "The bus was late, so I walked all the way.",
    "Thank you very much, that is very kind.",
    "Look out, the shelf is about to fall!",
    "Why would anybody do such a thing?",
)


# Backgrounds behind the training clips: the corners of a face region show the set, so the model
# must learn to continue whatever is there (one set only, and it paints that set's colour
# everywhere). 7 entries: with the 5 voices, line, voice and set combinations vary.
TRAINING_SETS: tuple[str, ...] = (
    "studio", "kitchen", "park", "office", "newsroom", "#2d3142", "#e8d5b7",
)


def regions_for(compositor: Compositor, *, crop_px: int) -> list[FaceRegion]:
    """One face region per character of ``compositor``, in slot order."""
    lay = compositor.layout
    return [
        FaceRegion.around(box, frame_w=lay.width_px, frame_h=lay.height_px, crop_px=crop_px)
        for box in compositor.mouth_boxes()
    ]


@dataclass(frozen=True)
class RigClip:
    """One spoken line drawn by the rig: its face-crop dataset and the frames' mouth tracks."""

    dataset: FaceClipDataset
    mouth: np.ndarray  # (N, 15) viseme weights, row k drives frame k
    pcm: np.ndarray  # int16 48 kHz, frame k covers samples [1920 k, 1920 (k+1))


def rig_clip(
    spec: CharacterSpec,
    mouth: np.ndarray,
    *,
    crop_px: int,
    frame_px: int = 256,
    window_frames: int = 5,
    pcm: np.ndarray | None = None,
    set_name: str = "studio",
) -> RigClip:
    """Draw ``spec`` saying a line whose mouth track is ``mouth`` (N, 15) and cut its face crops."""
    compositor = Compositor(
        layout=SceneLayout.for_count(1, width_px=frame_px, height_px=frame_px),
        characters=[spec],
        set_name=set_name,
    )
    from avatar.director import SceneDirector  # local: director imports the scene module

    director = SceneDirector.for_compositor(compositor)
    (region,) = regions_for(compositor, crop_px=crop_px)
    rest = crop_regions(compositor.compose([Pose()]), [region], crop_px=crop_px)
    crops = []
    for k in range(mouth.shape[0]):
        poses = director.poses(k, mouths=[mouth[k]], speaking=[bool(mouth[k, 0] < 0.99)])
        crops.append(crop_regions(compositor.compose(poses), [region], crop_px=crop_px))
    dataset = FaceClipDataset(
        frames=to_u8(torch.cat(crops)),
        references=to_u8(rest),
        masks=region.mask[None],
        drive=viseme_windows(mouth, window_frames=window_frames),
    )
    return RigClip(
        dataset=dataset, mouth=mouth, pcm=pcm if pcm is not None else np.zeros(0, np.int16)
    )


def voice_grid(spec: CharacterSpec) -> list[VoiceSpec]:
    """The character's own voice at three rates, and two neighbouring variants: varied timing."""
    v = spec.voice
    return [
        VoiceSpec(
            language=v.language,
            variant=v.variant,
            pitch=v.pitch,
            pitch_range=v.pitch_range,
            rate_wpm=r,
        )
        for r in (140, v.rate_wpm, 220)
    ] + [
        VoiceSpec(
            language=v.language,
            variant=var,
            pitch=v.pitch,
            pitch_range=v.pitch_range,
            rate_wpm=v.rate_wpm,
        )
        for var in ("m3", "f4")
    ]


def rig_clips(
    spec: CharacterSpec,
    *,
    crop_px: int,
    lines: Sequence[str] = TRAINING_LINES,
    n_clips: int = 24,
    frame_px: int = 256,
    speech: SpeechEngine | None = None,
    window_frames: int = 5,
    first: int = 0,
) -> list[RigClip]:
    """Clips ``first .. n_clips - 1`` of ``spec``: line i spoken in voice i mod len(voice_grid),
    in front of set i mod len(TRAINING_SETS).

    ``first`` skips clips without drawing them (e.g. only a build's held-out clips)."""
    speech = speech or SpeechEngine()
    voices = voice_grid(spec)
    clips = []
    for i in range(first, n_clips):
        utt = speech.say(lines[i % len(lines)], voices[i % len(voices)])
        clips.append(
            rig_clip(
                spec,
                utt.mouth,
                crop_px=crop_px,
                frame_px=frame_px,
                window_frames=window_frames,
                pcm=utt.pcm,
                set_name=TRAINING_SETS[i % len(TRAINING_SETS)],
            )
        )
    return clips


def split_clips(
    clips: Sequence[RigClip], *, held_out: int
) -> tuple[FaceClipDataset, FaceClipDataset]:
    """(train, held-out) datasets: the last ``held_out`` clips are never trained on."""
    if not 0 < held_out < len(clips):
        raise ValueError(f"held_out must be 1..{len(clips) - 1} clips, got {held_out}")
    train = FaceClipDataset.concat([c.dataset for c in clips[:-held_out]])
    test = FaceClipDataset.concat([c.dataset for c in clips[-held_out:]])
    return train, test
