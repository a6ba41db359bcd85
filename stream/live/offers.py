"""Answering an SDP offer: every way an offer can fail is one ``OfferError`` (400) naming why.

aiortc reports a bad offer in many shapes (``ValueError``, ``KeyError`` for an unknown
``a=setup``, ``AssertionError`` for odd payload types, ``OperationError`` when no codec is
shared), and takes an offer without a DTLS fingerprint only to fail in the background once ICE
connects. ``set_remote_offer`` checks what aiortc leaves unchecked, applies the offer, and turns
any failure into an ``OfferError``; ``make_answer`` does the same for the answer. The caller
closes the peer connection when either raises.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import OperationError
from aiortc.mediastreams import MediaStreamTrack

from stream.errors import OfferError
from stream.live.ice import keep_local_candidates

SETUP_VALUES = ("actpass", "active", "passive")  # a=setup values aiortc can answer
FINGERPRINT_ALGORITHMS = ("sha-256", "sha-384", "sha-512")  # DTLS fingerprints aiortc can check
CODEC_HINT = {"video": "VP8 or H264", "audio": "Opus, PCMU or PCMA"}


async def set_remote_offer(pc: RTCPeerConnection, sdp: str, *, local_only: bool = False) -> None:
    """Apply ``sdp`` as ``pc``'s remote offer, or raise ``OfferError`` naming what is wrong.

    ``local_only``: keep only the candidates on this machine's own addresses (a loopback server).
    """
    check_offer(sdp)
    if local_only:
        sdp = keep_local_candidates(sdp)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    except OfferError:
        raise
    except OperationError as exc:  # aiortc raises it only when a media section shares no codec
        kind = "audio" if "audio" in str(exc) else "video" if "video" in str(exc) else "media"
        raise OfferError(
            f"the SDP offer's {kind} section has no codec in common with the server; "
            f"offer {CODEC_HINT.get(kind, 'VP8 or H264 video, Opus audio')}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - aiortc's parser fails in many shapes; all are the offer's fault
        raise OfferError(f"the SDP offer is not valid: {_describe(exc)}") from exc


async def make_answer(pc: RTCPeerConnection) -> RTCSessionDescription:
    """Create and set ``pc``'s answer to the remote offer; ``OfferError`` when it cannot be made."""
    try:
        await pc.setLocalDescription(await pc.createAnswer())
    except OfferError:
        raise
    except Exception as exc:  # noqa: BLE001 - as above: a failure here is the offer's
        raise OfferError(f"the SDP offer cannot be answered: {_describe(exc)}") from exc
    if pc.localDescription is None:
        raise OfferError("the SDP offer cannot be answered: no local description was made")
    return pc.localDescription


async def answer_viewer(
    pc: RTCPeerConnection, sdp: str, *, video: MediaStreamTrack, audio: MediaStreamTrack, local_only: bool
) -> RTCSessionDescription:
    """Answer an offer that receives the scene: ``video`` always (the offer must ask for it),
    ``audio`` when it asks for that too; ``OfferError`` naming what is wrong otherwise."""
    await set_remote_offer(pc, sdp, local_only=local_only)
    kinds = {t.kind for t in pc.getTransceivers()}
    if "video" not in kinds:
        raise OfferError("the offer has no video; add a recvonly video transceiver")
    pc.addTrack(video)
    if "audio" in kinds:
        pc.addTrack(audio)
    return await make_answer(pc)


def check_offer(sdp: str) -> None:
    """Refuse an offer aiortc would take but never connect, or would reject with a bare error:
    no ``v=0``, no media section, an unknown ``a=setup``, a media section without a DTLS
    fingerprint of an algorithm aiortc checks."""
    lines = [line.strip() for line in sdp.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise OfferError("the SDP offer does not start with 'v=0'; send the offer's SDP text as made by createOffer()")
    session_fingerprints: list[str] = []
    sections: list[tuple[str, list[str]]] = []  # (m= line, its fingerprints)
    for line in lines:
        if line.startswith("m="):
            sections.append((line, []))
            continue
        if line.startswith("a=setup:"):
            value = line.removeprefix("a=setup:")
            if value not in SETUP_VALUES:
                raise OfferError(
                    f"the SDP offer has 'a=setup:{value[:20]}'; the server answers {', '.join(SETUP_VALUES)}"
                )
        elif line.startswith("a=fingerprint:"):
            algorithm = line.removeprefix("a=fingerprint:").split(" ", 1)[0].lower()
            (sections[-1][1] if sections else session_fingerprints).append(algorithm)
    if not sections:
        raise OfferError("the SDP offer has no media section (m=); add a video transceiver and a data channel")
    for m_line, fingerprints in sections:
        usable = [a for a in session_fingerprints + fingerprints if a in FINGERPRINT_ALGORITHMS]
        if not usable:
            kind = m_line.removeprefix("m=").split(" ", 1)[0][:20]
            raise OfferError(
                f"the SDP offer's {kind} section has no DTLS fingerprint "
                f"(a=fingerprint: with one of {', '.join(FINGERPRINT_ALGORITHMS)})"
            )


def _describe(exc: Exception) -> str:
    """aiortc's own words where it has some; else the kind of failure (a bare KeyError, ...)."""
    text = str(exc).strip()[:200]
    if isinstance(exc, KeyError | AssertionError | StopIteration | IndexError) or not text:
        return f"a line it cannot read ({type(exc).__name__}{': ' + text if text else ''})"
    return text
