"""ICE for a server bound to loopback: its media stays on this machine too.

A server listening on 127.0.0.1 should not offer or contact media addresses a remote peer could
use. It gathers 127.0.0.1 only (aioice gathers host candidates from every interface except
loopback), and from the offers it is given it keeps the candidates on this machine's own
addresses: loopback, and the addresses of its interfaces, which is where a stock client on this
machine (aioice, a WHIP tool) offers from, since it gathers no loopback candidates. Packets to
the machine's own addresses never leave it; other candidates (and mDNS ``.local`` names) are
dropped.
"""

from __future__ import annotations

import ipaddress

import aioice.ice
import ifaddr


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else (["::1"] if use_ipv6 else [])


def use_loopback_candidates() -> None:
    """Make every peer connection of this process gather loopback host candidates only."""
    aioice.ice.get_host_addresses = _loopback_host_addresses


def own_addresses() -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of this machine's interfaces, loopback included (read afresh: they change)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                found.add(ipaddress.ip_address(address.split("%")[0]))
            except ValueError:
                continue
    return frozenset(found)


def _is_own(address: str, own: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # an mDNS name or garbage
    return ip.is_loopback or ip in own


def keep_local_candidates(sdp: str) -> str:
    """The SDP without ``a=candidate`` lines whose address is not one of this machine's own."""
    own = own_addresses()
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 5 or not _is_own(parts[4], own):
                continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"
