"""The relay's signer lane: one key, one transaction in flight, fees from the node, bumps that nodes accept.

Pure fee arithmetic (:func:`bump`, :func:`initial_fees`, :func:`replacement_fees`)
stays apart from :class:`Lane`, the JSON-RPC side: pending-aware nonces,
EIP-1559 fees from ``eth_feeHistory`` (bounded: see :func:`initial_fees`), signing, broadcasting with the node's
answer classified (sent / already known / nonce used / underpriced), receipts
and the canonical-chain check that catches a reorg.

With a private submission endpoint (``relay.private_rpc_url``) every raw
transaction goes there and only there; reads, receipts, nonces, fees,
simulations and gas estimates stay on the main RPC. The main node then does
not see our transaction until it is mined, so :meth:`Lane.known` answers
"visible to the public node", not "still pending anywhere" (the daemon's
reconcile acts on that difference).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sentinel.chain.client import web3_errors
from sentinel.errors import ChainError, ChainUnavailable, FeeRefused

#: What a private endpoint's outage suggests (its ChainUnavailable's hint).
PRIVATE_HINT = ("the transaction stays queued and goes to the private endpoint (relay.private_rpc_url) when it "
                "answers; relay.private_fallback_public = true would send it to the public mempool instead")

GWEI = 10**9

log = logging.getLogger("sentinel.relay")


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fee fields, in wei."""

    max_fee: int
    max_priority_fee: int


def bump(value: int, percent: float) -> int:
    """``value`` raised by ``percent`` rounded up, and by at least 1 wei (so a replacement is never equal)."""
    thousandths = round(percent * 1000)
    return value + max(1, -(-value * thousandths // 100_000))


def initial_fees(next_base_fee: int, priority: int, multiplier: float, cap: int, *, priority_cap: int,
                 latest_base_fee: int) -> Fees:
    """maxFee = multiplier x the next block's base fee + priority (room for base fee rises), bounded.

    The tip is at most ``priority_cap``; maxFee at most ``multiplier`` x the
    latest block's base fee + the tip, and at most ``cap``. A next base fee
    above ``multiplier`` x the latest block's is refused (:class:`FeeRefused`):
    EIP-1559 lets one block raise the base fee by 12.5 % at most, so only a
    lying or broken node answers that.
    """
    priority = min(max(1, int(priority)), priority_cap)
    ceiling = int(max(latest_base_fee, 1) * multiplier)
    if next_base_fee > ceiling:
        raise FeeRefused(next_base_fee, latest_base_fee, multiplier)
    max_fee = min(int(next_base_fee * multiplier), ceiling) + priority
    return Fees(min(max_fee, cap), min(priority, cap))


def within_caps(fees: Fees, cap: int, priority_cap: int) -> bool:
    """True if neither fee field is above its cap (a replacement that is not stays unsent)."""
    return fees.max_fee <= cap and fees.max_priority_fee <= priority_cap


def replacement_fees(old: Fees, market: Fees, percent: float) -> Fees:
    """Fees for a same-nonce replacement: at least ``percent`` above the old on *both* fields, and at
    least what the market asks now (a bump from a stale price may still be under the base fee)."""
    priority = max(bump(old.max_priority_fee, percent), market.max_priority_fee)
    max_fee = max(bump(old.max_fee, percent), market.max_fee, priority)
    return Fees(max_fee, priority)


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction: hash, raw bytes as hex, and what went into it."""

    tx_hash: str
    raw_tx: str
    nonce: int
    fees: Fees
    gas: int


#: How a node answered eth_sendRawTransaction.
SENT, KNOWN, NONCE_USED, UNDERPRICED = "sent", "known", "nonce_used", "underpriced"


def classify_send_error(message: str) -> str | None:
    """Map a node's refusal to an outcome; None if it is something else (a real error)."""
    text = message.lower()
    if "already known" in text or "already imported" in text or "known transaction" in text:
        return KNOWN
    if "nonce too low" in text or "nonce has already been used" in text or "invalid nonce" in text:
        return NONCE_USED
    if "underpriced" in text or "less than block base fee" in text or "fee cap less than" in text \
            or "max fee per gas less than" in text:
        return UNDERPRICED
    return None


class Lane:
    """JSON-RPC side of the signer lane, on a :class:`~sentinel.chain.client.Chain`."""

    def __init__(self, chain: Any, key: Any, *, multiplier: float, priority_gwei: float, cap_gwei: float,
                 bump_percent: float, priority_cap_gwei: float, private: Any | None = None,
                 fallback_public: bool = False) -> None:
        self.chain = chain
        #: a :class:`~sentinel.chain.client.SendOnlyEndpoint` every raw transaction goes to, or None
        self.private = private
        self.fallback_public = fallback_public
        self.w3 = chain.w3
        self.key = key
        self.address = key.address
        self.multiplier = multiplier
        self.priority_gwei = priority_gwei
        self.cap = int(cap_gwei * GWEI)
        self.priority_cap = int(priority_cap_gwei * GWEI)
        self.bump_percent = bump_percent
        self.last_block_time: int | None = None  #: timestamp of the newest block :meth:`head` returned

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with web3_errors(what, self.chain.rpc_url):
            return fn(*args, **kwargs)

    def market_fees(self) -> Fees:
        """Fees the node suggests now, bounded (:func:`initial_fees`): next block's base fee from eth_feeHistory,
        checked against the latest block's; priority from its rewards, at most the priority cap."""
        latest_base = int(self.head().get("baseFeePerGas", 0))
        history = self._call("eth_feeHistory", self.w3.eth.fee_history, 10, "latest", [50])
        next_base = int(history["baseFeePerGas"][-1])
        if self.priority_gwei > 0:
            priority = int(self.priority_gwei * GWEI)
        else:
            rewards = sorted(int(r[0]) for r in history.get("reward", []) if r)
            priority = rewards[len(rewards) // 2] if rewards and rewards[len(rewards) // 2] > 0 else 0
            if priority == 0:
                priority = int(self._call("eth_maxPriorityFeePerGas", lambda: self.w3.eth.max_priority_fee))
            if priority > self.priority_cap:
                log.warning("event=priority_fee_capped suggested=%d cap=%d: tipping the cap, not the node's suggestion",
                            priority, self.priority_cap)
        return initial_fees(next_base, priority, self.multiplier, self.cap, priority_cap=self.priority_cap,
                            latest_base_fee=latest_base)

    def nonces(self) -> tuple[int, int]:
        """(mined, pending) transaction counts of the lane's address."""
        mined = self._call("eth_getTransactionCount", self.w3.eth.get_transaction_count, self.address, "latest")
        pending = self._call("eth_getTransactionCount", self.w3.eth.get_transaction_count, self.address, "pending")
        return int(mined), int(pending)

    def next_nonce(self, outstanding: list[int]) -> int:
        """The pending count, but never below a nonce the queue already used for an unmined transaction."""
        _, pending = self.nonces()
        return max([pending] + [n + 1 for n in outstanding])

    def sign(self, tx: dict[str, Any], nonce: int, fees: Fees, gas: int) -> SignedTx:
        """Sign ``tx`` (to, data, value) with this nonce, these fees and gas limit."""
        fields = {"to": tx["to"], "data": tx["data"], "value": tx.get("value", 0), "chainId": self.chain.chain_id,
                  "nonce": nonce, "gas": gas, "maxFeePerGas": fees.max_fee,
                  "maxPriorityFeePerGas": fees.max_priority_fee, "type": 2}
        signed = self.w3.eth.account.sign_transaction(fields, self.key.secret)
        return SignedTx("0x" + bytes(signed.hash).hex(), "0x" + bytes(signed.raw_transaction).hex(), nonce, fees, gas)

    @property
    def sends_privately(self) -> bool:
        """True if raw transactions go to a private endpoint (the main node sees them only once mined)."""
        return self.private is not None

    def broadcast(self, raw_tx: str) -> tuple[str, str]:
        """eth_sendRawTransaction: (outcome, node message), to the private endpoint if there is one, else the
        main RPC. Transport failures raise ChainUnavailable; a private endpoint's are never retried on the main
        RPC unless ``fallback_public`` (its outage would otherwise put a tripping report in the public mempool)."""
        if self.private is None:
            return self._send("eth_sendRawTransaction", self.chain.rpc_url, self.w3.eth.send_raw_transaction, raw_tx)
        try:
            return self._send("eth_sendRawTransaction to the private endpoint", self.private.label,
                              self.private.send_raw_transaction, raw_tx)
        except ChainUnavailable as exc:
            if not self.fallback_public:
                raise ChainUnavailable(exc.rpc_url, exc.problem, hint=PRIVATE_HINT) from exc.__cause__
            log.warning("event=private_rpc_fallback endpoint=%s error=%r: sending through the public RPC "
                        "(relay.private_fallback_public)", self.private.label, exc.problem)
        return self._send("eth_sendRawTransaction", self.chain.rpc_url, self.w3.eth.send_raw_transaction, raw_tx)

    @staticmethod
    def _send(what: str, where: str, send: Any, raw_tx: str) -> tuple[str, str]:
        try:
            with web3_errors(what, where, refusals=(ValueError,)):
                send(raw_tx)
        except ChainUnavailable:
            raise
        except ChainError as exc:
            message = str(exc.__cause__)
            outcome = classify_send_error(message)
            if outcome is None:
                raise
            return outcome, message
        return SENT, ""

    def receipt(self, tx_hash: str) -> Any | None:
        """The receipt, or None while the transaction is not mined (or not known)."""
        from web3.exceptions import TransactionNotFound

        try:
            return self._call("eth_getTransactionReceipt", self.w3.eth.get_transaction_receipt, tx_hash)
        except ChainError as exc:
            if isinstance(exc.__cause__, TransactionNotFound):
                return None
            raise

    def known(self, tx_hash: str) -> bool:
        """True if the main node has the transaction (pending or mined).

        With a private endpoint (:attr:`sends_privately`) our unmined transactions are normally unknown
        to the main node, so False means "not visible", not "dropped".
        """
        from web3.exceptions import TransactionNotFound

        try:
            self._call("eth_getTransactionByHash", self.w3.eth.get_transaction, tx_hash)
        except ChainError as exc:
            if isinstance(exc.__cause__, TransactionNotFound):
                return False
            raise
        return True

    def head(self) -> Any:
        """The latest block (its time is remembered in :attr:`last_block_time`)."""
        block = self._call("eth_getBlockByNumber", self.w3.eth.get_block, "latest")
        self.last_block_time = int(block["timestamp"])
        return block

    def canonical(self, number: int, block_hash: str) -> bool:
        """True if ``block_hash`` is still the chain's block at ``number`` (no reorg since)."""
        from web3.exceptions import BlockNotFound

        try:
            block = self._call("eth_getBlockByNumber", self.w3.eth.get_block, number)
        except ChainError as exc:
            if isinstance(exc.__cause__, BlockNotFound):
                return False
            raise
        return "0x" + bytes(block["hash"]).hex() == block_hash
