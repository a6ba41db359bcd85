"""Tools apart from the server: the talkie CLI, benches, avatar build/animate and a Python client."""
