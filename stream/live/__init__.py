"""The per-session pipeline: control messages, lines, frames, pictures and the clocked tracks."""
