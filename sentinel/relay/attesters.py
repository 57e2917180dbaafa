"""Asking the attester services for a window's signatures; the relay holds no attester key.

Each attester party runs ``sentinel attester serve`` with its own key and its
own copy of the feed, and signs a window only after recomputing its input hash
from its own rows (see docs/attester.md). The relay posts the window's
(chain id, breaker, window id, window end, input hash) to every configured
service in parallel and keeps an answer only if it is a 65-byte signature that
recovers, over this breaker's EIP-712 domain, to the signer the service names
and that signer is registered on the breaker *now*. It stops waiting as soon
as ``quorum`` such signatures are in; with fewer, the window waits (the caller
keeps it ``proved`` and asks again later).

Nothing an attester says is trusted beyond its signature: a service that
answers for another address, signs another message, or is no longer
registered is counted as ``invalid`` or ``unregistered`` and left out.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentinel.chain import eip712
from sentinel.chain.encoding import AttestationMessage, SignedAttestation
from sentinel.config import redact_url

#: Seconds to open a connection to an attester (a stopped one refuses at once; an unroutable one must not
#: hold the pass for the whole read timeout).
CONNECT_TIMEOUT = 2.0
#: Outcomes of one request, as counted in ``sentinel_relay_attester_requests_total``.
OUTCOMES = ("signed", "refused", "unavailable", "invalid", "unregistered")  # unavailable: no answer, 429 or 5xx


@dataclass(frozen=True)
class Answer:
    """One attester's answer to one request."""

    attester: str  #: the service as it may be shown (scheme://host:port)
    outcome: str  #: one of OUTCOMES
    detail: str  #: the refusal, the transport error, or why a signature was left out ("" when signed)
    seconds: float
    signer: str | None = None
    signature: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"attester": self.attester, "outcome": self.outcome, "detail": self.detail,
                "seconds": round(self.seconds, 3), "signer": self.signer}


@dataclass(frozen=True)
class Collected:
    """What one round of requests gave: the signatures that count, and every answer."""

    attestation: SignedAttestation
    answers: tuple[Answer, ...]
    quorum: int

    @property
    def complete(self) -> bool:
        return len(self.attestation.signatures) >= self.quorum

    def shortfall(self) -> str:
        """One line on why the quorum was not met (for logs and /healthz)."""
        parts = [f"{a.attester} {a.outcome}" + (f" ({a.detail})" if a.detail else "") for a in self.answers]
        return (f"{len(self.attestation.signatures)} of {self.quorum} signatures: "
                + ("; ".join(parts) if parts else "no attester answered"))


def request_body(message: AttestationMessage, chain_id: int, breaker: str) -> dict[str, Any]:
    """The JSON an attester service takes on ``POST /v1/attest``."""
    return {"chain_id": chain_id, "breaker": breaker, "window_id": message.window_id,
            "window_end": message.window_end, "input_hash": f"0x{message.input_hash:064x}"}


def _ask(url: str, body: dict[str, Any], timeout: float) -> tuple[int | None, Any, str]:
    """(HTTP status or None, decoded JSON or None, transport error or "")."""
    import requests

    try:
        response = requests.post(url.rstrip("/") + "/v1/attest", json=body,
                                timeout=(min(CONNECT_TIMEOUT, timeout), timeout))
    except requests.RequestException as exc:
        return None, None, type(exc).__name__
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return response.status_code, payload, ""


def judge(attester: str, status: int | None, payload: Any, transport: str, seconds: float, *,
          message: AttestationMessage, chain_id: int, breaker: str, registered: set[str]) -> Answer:
    """Turn one HTTP exchange into an :class:`Answer`; a signature counts only if it recovers to a registered
    signer that is the one the service named."""
    if status is None:
        return Answer(attester, "unavailable", transport, seconds)
    error = payload.get("error") if isinstance(payload, dict) else None
    if status != 200:
        detail = f"HTTP {status}" + (f": {str(error)[:300]}" if error else "")
        return Answer(attester, "refused" if status in (409, 422) else "unavailable", detail, seconds)
    if not isinstance(payload, dict) or not isinstance(payload.get("signer"), str) \
            or not isinstance(payload.get("signature"), str):
        return Answer(attester, "invalid", "HTTP 200 without {signer, signature}", seconds)
    try:
        signature = bytes.fromhex(payload["signature"].removeprefix("0x"))
    except ValueError:
        return Answer(attester, "invalid", "signature is not hex", seconds)
    if len(signature) != 65:
        return Answer(attester, "invalid", f"signature is {len(signature)} bytes, not 65", seconds)
    try:
        recovered = eip712.recover(signature, chain_id, breaker, message)
    except Exception as exc:  # noqa: BLE001 - eth-account raises several types for a malformed signature
        return Answer(attester, "invalid", f"signature does not recover: {type(exc).__name__}", seconds)
    named = payload["signer"]
    if recovered.lower() != named.lower():
        return Answer(attester, "invalid", f"signature recovers to {recovered}, not to the named signer {named}",
                      seconds)
    if recovered.lower() not in registered:
        return Answer(attester, "unregistered", f"{recovered} is not an attester of the breaker now", seconds,
                      signer=recovered)
    return Answer(attester, "signed", "", seconds, signer=recovered, signature=signature)


def collect(urls: tuple[str, ...], message: AttestationMessage, *, chain_id: int, breaker: str,
            registered: set[str], quorum: int, timeout: float,
            on_late: Callable[[Answer], None] | None = None) -> Collected:
    """Ask every attester in parallel; return as soon as ``quorum`` distinct registered signers have signed.

    The parties not heard by then are not waited for, but their answers still matter (a refusal says a party's
    copy of the feed disagrees): each is handed to ``on_late`` when it comes (from the pool thread that asked, or
    at once if it is already in).
    """
    body = request_body(message, chain_id, breaker)
    answers: list[Answer] = []
    signatures: dict[str, bytes] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(urls)), thread_name_prefix="attest")
    try:
        started = time.monotonic()
        futures = {pool.submit(_ask, url, body, timeout): url for url in urls}

        def answer_of(future: concurrent.futures.Future[tuple[int | None, Any, str]]) -> Answer:
            status, payload, transport = future.result()
            return judge(redact_url(futures[future]), status, payload, transport, time.monotonic() - started,
                         message=message, chain_id=chain_id, breaker=breaker, registered=registered)

        heard: set[concurrent.futures.Future[tuple[int | None, Any, str]]] = set()
        for future in concurrent.futures.as_completed(futures):
            heard.add(future)
            answer = answer_of(future)
            signer, signature = answer.signer, answer.signature
            if answer.outcome == "signed" and signer is not None and signature is not None:
                if signer.lower() in {s.lower() for s in signatures}:
                    answer = Answer(answer.attester, "invalid", f"{signer} already signed through another service",
                                    answer.seconds, signer=signer)
                else:
                    signatures[signer] = signature
            answers.append(answer)
            if len(signatures) >= quorum:
                break
        if on_late is not None:
            for future in set(futures) - heard:
                future.add_done_callback(lambda done: on_late(answer_of(done)))
    finally:
        pool.shutdown(wait=False, cancel_futures=on_late is None)
    attestation = SignedAttestation(message, chain_id, breaker, tuple(signatures.items()))
    return Collected(attestation, tuple(answers), quorum)
