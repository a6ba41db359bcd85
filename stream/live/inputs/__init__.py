"""Live audio inputs: a microphone, WHIP publisher or file driving one character."""
