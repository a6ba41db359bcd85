"""Who is on screen and how they look: character specs, the rig renderer, scenes and the compositor.

Modules, in the order the data flows:

- ``spec``: ``Look`` and ``CharacterSpec`` (name, look, voice, seed), the built-in cast,
  ``auto_cast(name)`` (deterministic from the name) and ``Cast``.
- ``pose``: ``Pose`` (mouth blend, eyes, gaze, head offset, breath, brows), its quantization,
  ``pose_mouth_from_weights``.
- ``motion``: ``MotionModel.pose_at(frame, ...)``: blinks, breathing, sway, listening, as a pure
  function of the frame index.
- ``rig``: ``RigCharacter``: layers drawn once per character (``draw``, ``face``, ``mouth``,
  ``hair``, ``body``, ``colors``), assembled per pose from cached parts.
- ``sets``: procedural backgrounds (``render_set``), or a solid colour for chroma keying.
- ``scene``: ``SceneLayout`` for 1-4 characters and the ``Compositor`` that draws frames.
- ``measure``: ``mouth_opening(frame, box)``: how open a drawn mouth is, from pixels.
- ``neural``: the trained model repainting the rig's mouths (``renderer``) and the rig clips it
  is trained on (``rig_clips``).
"""
