"""Getting it to people, live and on disk: media writing, the server, the recorder and the CLI."""
