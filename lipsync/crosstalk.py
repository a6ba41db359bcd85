"""Cross-talk between the live inputs of one room: whose voice is a microphone really carrying?

Two people in one room each have a microphone; each microphone also hears the other person,
typically 15-25 dB quieter, a few milliseconds later and coloured by the room. Left alone, each
input's voice gate opens on the other's voice and both characters talk.

Per 10 ms hop, for every input ``i`` and every other input ``j`` of the room, in each log-mel
band of the speech range:

- ``j``'s **held envelope**: its band power, held with a release of ``release_db_per_hop`` (so a
  voice that reaches ``i`` later than ``j``, or rings on in the room, is still covered) and
  including up to ``lead_hops`` of ``j``'s hops after this one (a voice that reaches ``i`` first).
- the **coupling** ``j → i``: how much of ``j``'s voice shows up in ``i``, the running median
  of the ratio ``i / j`` (dB, ``j`` taken at its loudest within ``lag_hops`` before and
  ``lead_hops`` after) over the hops where ``j`` is loud, ignoring ratios far above it (``i``
  talking too): the level drop of ``j``'s voice on its way to ``i``'s microphone. It starts
  high (``coupling_init_db``: assume a close neighbour) and falls to the room's value within a
  second or two of ``j`` speaking alone.
- the **bleed** predicted in ``i``: coupling x held envelope, summed over the others, times
  ``over_subtract_db`` of margin. What is left of ``i``'s power above that and above ``i``'s own
  noise floor is ``i``'s own voice.

A hop is ``i``'s own when its own voice is at least ``own_share`` of its band power, or when no
other input is ``min_drop_db`` louder than it (a voice can only leak from a louder input: two
copies of one microphone both stay open). A voice that appears in two inputs with a delay and a
level drop is therefore credited to the louder one only; two people talking at once each keep
their own hops. The decision uses only hops already decided by each input's mouth tracker, so
it adds no delay. Pure numpy; the caller keeps one ``CrossTalk`` per room and feeds it the hops
each input plays in a frame, in frame order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lipsync.features import FeatureConfig, band_centres_hz


@dataclass(frozen=True, slots=True)
class CrossTalkConfig:
    """How inputs of one room are told apart (levels in dB of log-mel band power)."""

    band_low_hz: float = 150.0
    band_high_hz: float = 4_000.0
    lead_hops: int = 2
    lag_hops: int = 2
    release_db_per_hop: float = 3.0
    coupling_init_db: float = -6.0
    coupling_max_db: float = 0.0
    coupling_fall_db_per_hop: float = 0.1
    coupling_rise_db_per_hop: float = 0.1
    coupling_outlier_db: float = 10.0
    source_above_floor_db: float = 15.0
    over_subtract_db: float = 8.0
    own_share: float = 0.3
    min_drop_db: float = 6.0
    floor_fall_per_hop: float = 0.3
    floor_rise_per_hop: float = 0.002
    features: FeatureConfig = FeatureConfig()

    def __post_init__(self) -> None:
        if self.lead_hops < 0:
            raise ValueError(f"lead_hops must be >= 0, got {self.lead_hops}")
        if not 0.0 < self.own_share < 1.0:
            raise ValueError(f"own_share must be between 0 and 1, got {self.own_share}")


class _Member:
    """One input's running state: noise floor and held envelope per band."""

    def __init__(self, n_bands: int) -> None:
        self.floor_db: np.ndarray | None = None
        self.held = np.zeros(n_bands, np.float64)  # linear power, with release
        self.recent = np.zeros((0, n_bands), np.float64)  # the last few hops' power
        self.bleed_hops = 0
        self.hops = 0


class CrossTalk:
    """Decides, per hop, which inputs of a room carry their own voice (see the module doc).

    ``decide`` takes, per input id, the band rows (dB) of the hops it plays now (the same number
    for every input: one frame) and of up to ``lead_hops`` decided hops after them; it returns
    per input one bool per played hop, True for the input's own voice. An input that joins or
    waits (plays nothing) is left out of the mapping; one that leaves the room is ``forget``-ed.
    """

    def __init__(self, config: CrossTalkConfig | None = None) -> None:
        self.config = config or CrossTalkConfig()
        cfg = self.config
        centres = band_centres_hz(cfg.features)
        self._band = (centres >= cfg.band_low_hz) & (centres <= cfg.band_high_hz)
        self._n = int(self._band.sum())
        self._members: dict[str, _Member] = {}
        self._coupling: dict[tuple[str, str], np.ndarray] = {}  # (source j, listener i) → dB per band
        self._release = 10.0 ** (-cfg.release_db_per_hop / 10.0)
        self._over = 10.0 ** (cfg.over_subtract_db / 10.0)

    def decide(
        self, played: Mapping[str, np.ndarray], ahead: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """``played[id]``: (n_hops, n_mels) dB rows played now; ``ahead[id]``: (m, n_mels) rows after
        them, if decided. Returns per id (n_hops,) bools: the input's own voice."""
        cfg = self.config
        ids = list(played)
        if not ids:
            return {}
        n_hops = {played[i].shape[0] for i in ids}
        if len(n_hops) != 1:
            raise ValueError(f"every input must play the same number of hops, got {sorted(n_hops)}")
        n = n_hops.pop()
        rows = {}
        for i in ids:
            extra = ahead.get(i) if ahead is not None else None
            both = played[i] if extra is None or not len(extra) else np.concatenate([played[i], extra[: cfg.lead_hops]])
            rows[i] = 10.0 ** (np.asarray(both, np.float64)[:, self._band] / 10.0)  # (n + lead, bands)
            if i not in self._members:
                self._members[i] = _Member(self._n)
        own = {i: np.ones(n, bool) for i in ids}
        for t in range(n):
            held, near = {}, {}
            for j in ids:
                m = self._members[j]
                m.held = np.maximum(m.held * self._release, rows[j][t])
                m.recent = np.concatenate([m.recent, rows[j][t : t + 1]])[-(cfg.lag_hops + 1) :]
                lead = rows[j][t + 1 : t + 1 + cfg.lead_hops].max(axis=0, initial=0.0)
                held[j] = np.maximum(m.held, lead)
                near[j] = np.maximum(m.recent.max(axis=0), lead)
            if len(ids) > 1:  # alone, an input carries only its own voice
                for i in ids:
                    own[i][t] = self._own(i, rows[i][t], held, ids)
                for i in ids:
                    self._learn(i, rows[i][t], near, ids)
            for i in ids:
                self._track(i, rows[i][t : t + 1])
                m = self._members[i]
                m.hops += 1
                m.bleed_hops += not own[i][t]
        return own

    def _own(self, i: str, power: np.ndarray, held: dict[str, np.ndarray], ids: list[str]) -> bool:
        cfg = self.config
        m = self._members[i]
        floor = 10.0 ** (m.floor_db / 10.0) if m.floor_db is not None else 0.0
        level = power.sum()
        mine = held[i].sum()  # like with like: both held, so a falling voice is not "quieter"
        louder = [j for j in ids if j != i and held[j].sum() >= mine * 10.0 ** (cfg.min_drop_db / 10.0)]
        if not louder:
            return True
        predicted = sum(self._gain(j, i) * held[j] for j in louder)
        left = np.maximum(0.0, power - self._over * predicted - floor).sum()
        return bool(left >= cfg.own_share * level)

    def _learn(self, i: str, power: np.ndarray, near: dict[str, np.ndarray], ids: list[str]) -> None:
        cfg = self.config
        for j in ids:
            if j == i:
                continue
            src = self._members[j]
            if src.floor_db is None:
                continue
            h_db = 10.0 * np.log10(near[j] + 1e-12)
            ratio = 10.0 * np.log10(power + 1e-12) - h_db
            g = self._coupling.setdefault((j, i), np.full(self._n, cfg.coupling_init_db))
            loud = h_db > src.floor_db + cfg.source_above_floor_db
            fall = loud & (ratio < g)
            rise = loud & (ratio >= g) & (ratio < g + cfg.coupling_outlier_db)
            g[fall] -= cfg.coupling_fall_db_per_hop
            g[rise] += cfg.coupling_rise_db_per_hop
            np.minimum(g, cfg.coupling_max_db, out=g)

    def _gain(self, j: str, i: str) -> np.ndarray:
        g = self._coupling.get((j, i))
        return 10.0 ** ((g if g is not None else np.full(self._n, self.config.coupling_init_db)) / 10.0)

    def _track(self, i: str, power_rows: np.ndarray) -> None:
        cfg = self.config
        m = self._members[i]
        for p in power_rows:
            db = 10.0 * np.log10(p + 1e-12)
            if m.floor_db is None:
                m.floor_db = db.copy()
                continue
            rate = np.where(db < m.floor_db, cfg.floor_fall_per_hop, cfg.floor_rise_per_hop)
            m.floor_db += rate * (db - m.floor_db)

    def forget(self, input_id: str) -> None:
        """Drop an input that left the room (and what was learned about it)."""
        self._members.pop(input_id, None)
        for key in [k for k in self._coupling if input_id in k]:
            del self._coupling[key]

    def bleed_db(self, input_id: str) -> float | None:
        """The strongest learned level drop of another input's voice into this one (median over
        the speech bands, dB), or None while nothing was learned."""
        learned = [float(np.median(g)) for (j, i), g in self._coupling.items() if i == input_id]
        return round(max(learned), 1) if learned else None

    def bleed_share(self, input_id: str) -> float:
        """Share of this input's hops so far that carried another input's voice, not its own."""
        m = self._members.get(input_id)
        return round(m.bleed_hops / m.hops, 4) if m is not None and m.hops else 0.0

