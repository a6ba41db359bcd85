"""What is said and how mouths move: scripts, speech, audio features and mouth tracks."""
