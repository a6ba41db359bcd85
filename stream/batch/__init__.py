"""Batch work on a series: many scripts rendered, many episodes exported, on Ray or a process pool.

``plan`` says what a batch holds and what of it is already done, ``tasks`` is what a worker
runs (media files only, never the database), ``runners`` runs tasks with retries on Ray or a
local process pool, and ``driver`` is the one writer that commits results into the store.
"""
