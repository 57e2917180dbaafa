"""Sentinel's exception tree.

Every failure a user can cause or meet is a :class:`SentinelError`. Each
pipeline stage has its own base class so callers can catch one stage's
failures, and leaves carry structured fields (path, row, column, tx hash) as
well as a one-line message that names what is wrong, where, and, when useful,
what to do next. The CLI prints ``str(error)`` and chooses the exit code
(:mod:`sentinel.cli.common`); nothing else in the library prints or exits.
"""

from __future__ import annotations

from pathlib import Path


class SentinelError(Exception):
    """Root of every error Sentinel raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


# --- per-stage bases -------------------------------------------------------


class ConfigError(SentinelError):
    """Configuration is missing, malformed or out of range."""


class DataError(SentinelError):
    """Market-depth data cannot be read, validated or generated."""


class ModelError(SentinelError):
    """Training, evaluation, scoring or export of the risk model failed."""


class CircuitError(SentinelError):
    """Building the circuit, proving or verifying failed."""


class ChainError(SentinelError):
    """Talking to the chain, compiling or deploying contracts failed."""


class RelayError(SentinelError):
    """The relay daemon could not make progress."""


class ProverLost(RelayError):
    """A prover process or actor died under a proof: its job may be proved again elsewhere."""


class AuditError(SentinelError):
    """The audit itself could not run (as opposed to finding discrepancies)."""


class AttesterError(SentinelError):
    """The attester service cannot start, or cannot keep its signing record."""


# --- data leaves -----------------------------------------------------------


class DataFileError(DataError):
    """A data file is missing, unreadable or not CSV."""

    def __init__(self, path: Path, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", hint=hint)


class DataValidationError(DataError):
    """A market-depth file breaks the schema; names the file, row and column.

    ``row`` is the 1-based data row (the header is not counted) and ``line`` is
    the line in the file (the header is line 1), so both an editor and a
    dataframe user can find it.
    """

    def __init__(
        self,
        path: Path | None,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
        more: int = 0,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.row = row
        self.column = column
        self.problem = problem
        self.more = more
        where = [str(self.path) if self.path is not None else "<data>"]
        if row is not None:
            where.append(f"row {row} (line {row + 1})")
        if column is not None:
            where.append(f"column '{column}'")
        message = ": ".join([", ".join(where), problem])
        if more:
            message += f" [and {more} more problem{'s' if more != 1 else ''}]"
        super().__init__(message)

    @property
    def line(self) -> int | None:
        """The 1-based line number in the file (header is line 1)."""
        return None if self.row is None else self.row + 1


# --- chain leaves ----------------------------------------------------------


class ChainUnavailable(ChainError):
    """The JSON-RPC endpoint cannot be reached or answers nonsense."""

    def __init__(self, rpc_url: str, problem: str, *, hint: str | None = None) -> None:
        self.rpc_url = rpc_url
        self.problem = problem
        super().__init__(f"{rpc_url}: {problem}", hint=hint)


class PortInUse(ChainError):
    """The local Anvil's port is already taken by another process."""

    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__(f"port {port} is already in use",
                         hint="stop what listens there, or pick another with SENTINEL_CHAIN__PORT or --port")


class ContractRevert(ChainError):
    """A contract call reverted; ``error`` is the decoded custom error's name."""

    def __init__(self, what: str, error: str, args: dict[str, object] | None = None,
                 *, tx_hash: str | None = None) -> None:
        self.what = what
        self.error = error
        self.args_ = dict(args or {})
        self.tx_hash = tx_hash
        shown = ", ".join(f"{k}={v}" for k, v in self.args_.items())
        where = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"{what} reverted: {error}({shown}){where}")


class ArtifactFieldError(ChainError):
    """A proof bundle, attestation or deployments file is missing a field or holds a bad value."""

    def __init__(self, path: Path, field: str, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}: field '{field}': {problem}", hint=hint)


class SigningKeyError(ChainError):
    """A private key is missing, malformed or not allowed here (secrets never appear in the message)."""


# --- audit leaves ----------------------------------------------------------


class AuditChainUnavailable(AuditError):
    """The auditor cannot read the chain: RPC unreachable, or no contract at the breaker address."""

    def __init__(self, rpc_url: str, problem: str, *, hint: str | None = None) -> None:
        self.rpc_url = rpc_url
        self.problem = problem
        super().__init__(f"{rpc_url}: {problem}", hint=hint)


class AuditArtifactsError(AuditError):
    """A published artifact set (manifest, vk, settings, SRS, compiled circuit) is missing or unreadable."""

    def __init__(self, path: Path, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", hint=hint)


class AuditDataError(AuditError):
    """An archived raw-data file given with --data cannot be read or validated."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# --- relay leaves ----------------------------------------------------------


class IllegalTransition(RelayError):
    """The relay queue refused a state change its state machine does not allow."""

    def __init__(self, window_id: int, current: str, target: str) -> None:
        self.window_id = window_id
        self.current = current
        self.target = target
        super().__init__(f"window {window_id}: illegal relay transition {current} -> {target}")


class QueueError(RelayError):
    """The relay's SQLite queue cannot be opened or is not a relay queue."""

    def __init__(self, path: Path, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", hint=hint)


class FeedError(RelayError):
    """The relay's data source is missing or unusable as a whole (a bad row is quarantined, not raised)."""

    def __init__(self, path: Path, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", hint=hint)


class FeeRefused(RelayError):
    """The node's fee suggestion is beyond what any honest node can answer: the relay does not bid on it."""

    def __init__(self, next_base_fee: int, latest_base_fee: int, multiplier: float) -> None:
        self.next_base_fee = next_base_fee
        self.latest_base_fee = latest_base_fee
        self.multiplier = multiplier
        super().__init__(
            f"refusing to bid: the node's next base fee ({next_base_fee / 10**9:g} gwei, eth_feeHistory) is more "
            f"than {multiplier:g} x the latest block's base fee ({latest_base_fee / 10**9:g} gwei), and one block "
            f"can raise it by 12.5 % at most",
            hint="a lying or broken RPC endpoint? the window stays queued and is tried again on the next pass")


# --- attester leaves -------------------------------------------------------


class SigningRecordError(AttesterError):
    """The attester's SQLite signing record cannot be opened or is not a signing record."""

    def __init__(self, path: Path, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", hint=hint)


class AlreadySigned(AttesterError):
    """The attester signed another (window end, input hash) for this window: it never signs a second one."""

    def __init__(self, window_id: int, breaker: str, window_end: int, input_hash: int) -> None:
        self.window_id = window_id
        self.breaker = breaker
        self.window_end = window_end
        self.input_hash = input_hash
        super().__init__(f"already signed input hash 0x{input_hash:064x} (window end {window_end}) for window "
                         f"{window_id} of breaker {breaker}; refusing to sign another")
