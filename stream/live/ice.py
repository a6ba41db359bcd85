"""ICE for a server bound to loopback: its media stays on this machine too.

A server listening on 127.0.0.1 should not offer or contact media addresses on other
interfaces. aioice gathers host candidates from every interface except loopback, so for a
loopback server we gather 127.0.0.1 only, and drop non-loopback (and mDNS ``.local``)
candidates from the offers we are given.
"""

from __future__ import annotations

import ipaddress

import aioice.ice


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else (["::1"] if use_ipv6 else [])


def use_loopback_candidates() -> None:
    """Make every peer connection of this process gather loopback host candidates only."""
    aioice.ice.get_host_addresses = _loopback_host_addresses


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # an mDNS name or garbage


def keep_loopback_candidates(sdp: str) -> str:
    """The SDP without ``a=candidate`` lines whose address is not a loopback address."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 5 or not _is_loopback(parts[4]):
                continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"
