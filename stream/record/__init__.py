"""Recording: live takes from a session's media taps, offline renders and scripts rendered into takes."""
