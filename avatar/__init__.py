"""Who is on screen and how they look: character specs, the rig renderer, scenes and the compositor."""
