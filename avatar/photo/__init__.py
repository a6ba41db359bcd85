"""Real people from one photo: face landmarks, a mesh puppet, a drawn mouth interior.

Data flow: ``image`` (a checked RGB photo) → ``landmarks`` (468+10 points from the model shipped
in the mediapipe wheel) → ``geometry`` (the face's own frame: mouth line, jaw, eyes) →
``puppet`` (the photo deformed per mouth shape, blink and head offset; ``interior`` draws what
an opening mouth shows) → ``folder`` (a photo character on disk: the photo, its landmarks and
matte, and for a video character the person's mouth model) → ``character`` (a photo folder as a
scene character; a video character's mouths painted by ``avatar.neural.video_mouth``).
"""
