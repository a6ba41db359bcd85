"""The episode store: series → episodes → scenes → takes in SQLite, media in files beside it."""

from stream.store.errors import (
    BadInputError,
    ConflictError,
    NotFoundError,
    StorageError,
    StorageFullError,
    StoreError,
)
from stream.store.models import (
    Character,
    Episode,
    ExportRecord,
    Scene,
    Segment,
    Series,
    SetRecord,
    Take,
    TakeLine,
    TakeShot,
)
from stream.store.store import Recovery, Store

__all__ = [
    "BadInputError",
    "Character",
    "ConflictError",
    "Episode",
    "ExportRecord",
    "NotFoundError",
    "Recovery",
    "Scene",
    "Segment",
    "Series",
    "SetRecord",
    "StorageError",
    "StorageFullError",
    "Store",
    "StoreError",
    "Take",
    "TakeLine",
    "TakeShot",
]
