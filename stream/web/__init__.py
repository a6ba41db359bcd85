"""The HTTP edge: the Starlette app, REST API, WHIP/WHEP, tokens and the one error path."""
