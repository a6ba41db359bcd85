"""Getting it to people, live and on disk. Wings in data-flow order: ``live`` (sessions, scenes,
tracks), ``record`` (takes and offline renders), ``store`` (the episode store), ``export``
(stitching, export jobs), ``media`` (MP4 and subtitle writers), ``web`` (the HTTP edge) and
``tools`` (CLIs, benches, the Python client). ``errors`` is the client-error base all share."""
