// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @notice The EZKL-generated Halo2 verifier: returns true or reverts with empty data.
interface IHalo2Verifier {
    function verifyProof(bytes calldata proof, uint256[] calldata instances) external returns (bool);
}

/// @title SentinelBreaker
/// @notice A circuit breaker driven by proven risk scores.
///
/// A report is accepted only when (cheapest checks first):
///   1. it carries exactly NUM_INSTANCES public instances, each below the BN254 scalar modulus;
///   2. the attested window id is the one its end gives at the cadence of the model in force
///      (windowId == windowEnd / cadence, rounded down), and it is strictly greater than the last accepted
///      window's id at that cadence (no replay, no reordering; ids follow time, so none can be pushed ahead);
///   3. the attested window end is at most `maxAge` old and at most FUTURE_SKEW ahead of the block;
///   4. the proven input hash (instances[INPUT_HASH_INDEX]) equals the attested input hash;
///   5. at least `quorum` distinct registered attesters signed the EIP-712 `Attestation`
///      (domain: name, version, chainId, verifyingContract = this breaker), signers in ascending order;
///   6. the pinned Halo2 verifier accepts the proof for these instances.
/// The score instance is a signed fixed-point felt (felt > R/2 is negative) at `scoreScale`;
/// it is converted to WAD (1e18 = a risk of 1.0) and fed to the state machine, whose streaks are runs of
/// consecutive *windows*, not of accepted reports: a report whose window does not immediately follow the
/// last accepted one starts both streaks afresh from itself (the windows in between count neither high nor
/// calm). So no trip and no recovery is reached without reporting every window of its run, and choosing
/// which windows to submit can never build one;
///   - trip after `tripAfter` consecutive windows scoring >= `tripThreshold` (anyone holding a valid,
///     attested proof can cause it: the proof and the attesters are the gate, not the caller);
///   - recover after `resetAfter` consecutive windows scoring <= `resetThreshold` (hysteresis) once `cooldown`
///     seconds have passed since the trip, or by governance;
///   - the guardian may trip by hand (also turning an automatic trip into a manual one) and can never
///     un-trip; a manual trip holds until governance recovers: reports never lift it (Compound's rule);
///   - a score that decodes outside [0, 1] (beyond one part in a hundred of rounding) is refused: the
///     model's output is a risk in [0, 1], so such a score means the score scale does not fit the circuit.
/// `submitBatch` reports `batchWindows` consecutive windows with ONE proof of the batch circuit (K copies of
/// the model; instances [hash_0..hash_{K-1}, score_0..score_{K-1}]): each window passes the checks above
/// (2-5) as its own report would, the batch verifier checks the one proof, then each window's score goes
/// through the same state update as `submit`'s, in window order, with the same events.
/// Verifier (model) upgrades go through a timelock that pins code, not just an address: propose names the
/// verifier's code hash, which must match then and again at execute; the batch verifier (the same model)
/// is proposed, pinned and switched together with it. Parameter changes reset the streaks,
/// as a verifier change does. The verifier is trusted code; it is called last among the checks.
contract SentinelBreaker is EIP712 {
    // ---------------------------------------------------------------- types and constants

    struct Attestation {
        uint64 windowId;
        uint64 windowEnd;
        uint256 inputHash;
    }

    /// @dev Packed into one slot: read once per report.
    struct Params {
        uint64 tripThreshold; // WAD
        uint64 resetThreshold; // WAD
        uint16 tripAfter;
        uint16 resetAfter;
        uint32 cooldown; // seconds
        uint32 maxAge; // seconds
        uint8 quorum;
    }

    /// @dev Packed into one slot: read and written once per report.
    struct State {
        uint64 lastWindowId; // at the cadence in force when it was accepted
        uint64 lastWindowEnd; // 0 before the first report
        uint64 trippedAt; // 0 while not tripped
        uint16 highStreak;
        uint16 lowStreak;
        bool tripped;
        bool manual; // tripped by the guardian or governance: only governance recovers
    }

    uint256 public constant BN254_R =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant HALF_R = BN254_R / 2;

    uint256 public constant NUM_INSTANCES = 2;
    uint256 public constant INPUT_HASH_INDEX = 0;
    uint256 public constant SCORE_INDEX = 1;

    uint256 public constant WAD = 1e18;
    uint256 public constant FUTURE_SKEW = 300;

    // Parameter bounds (every setter enforces them; see README "Contracts").
    uint256 public constant MIN_TRIP_THRESHOLD = 0.5e18;
    uint256 public constant MAX_TRIP_THRESHOLD = 1e18;
    uint256 public constant MIN_HYSTERESIS = 0.05e18; // resetThreshold <= tripThreshold - this
    uint256 public constant MAX_TRIP_AFTER = 32;
    uint256 public constant MAX_RESET_AFTER = 1440;
    uint256 public constant MIN_COOLDOWN = 60;
    uint256 public constant MAX_COOLDOWN = 7 days;
    uint256 public constant MIN_MAX_AGE = 60;
    uint256 public constant MAX_MAX_AGE = 1 days;
    uint256 public constant MAX_ATTESTERS = 32;
    uint256 public constant MIN_TIMELOCK = 1 hours;
    uint256 public constant MAX_TIMELOCK = 30 days;
    uint256 public constant MAX_SCORE_SCALE = 18; // WAD conversion is exact up to 2^18
    uint256 public constant MAX_CADENCE = 1 days;
    /// @dev Windows per batch proof, when batches are enabled (0 = disabled).
    uint256 public constant MIN_BATCH_WINDOWS = 2;
    uint256 public constant MAX_BATCH_WINDOWS = 16;
    /// @dev Scores beyond +-2^128 (far outside [0, 1]) are clamped before the WAD conversion.
    int256 internal constant SCORE_CLAMP = int256(uint256(1) << 128);
    /// @dev Fixed-point rounding allowed around [0, 1] before a score counts as out of range.
    int256 public constant SCORE_SLACK = 0.01e18;

    bytes32 public constant ATTESTATION_TYPEHASH =
        keccak256("Attestation(uint64 windowId,uint64 windowEnd,uint256 inputHash)");

    uint256 public immutable timelockDelay;

    // ---------------------------------------------------------------- storage

    IHalo2Verifier public verifier;
    uint8 public scoreScale;
    /// @notice Seconds between the model's rows: window ids are window ends divided by it.
    uint32 public cadence;
    /// @notice The verifier of the batch circuit (the same model, `batchWindows` windows per proof); zero when
    /// batches are disabled.
    IHalo2Verifier public batchVerifier;
    uint8 public batchWindows;
    Params public params;
    State public state;

    address public governance;
    address public pendingGovernance;
    address public guardian;

    mapping(address => bool) public isAttester;
    address[] internal attesterList;

    address public pendingVerifier;
    uint8 public pendingScoreScale;
    uint32 public pendingCadence;
    uint64 public pendingVerifierEta;
    bytes32 public pendingVerifierCodehash;
    address public pendingBatchVerifier;
    uint8 public pendingBatchWindows;
    bytes32 public pendingBatchVerifierCodehash;

    // ---------------------------------------------------------------- errors

    error InstanceCountMismatch(uint256 got, uint256 expected);
    error InstanceNotInField(uint256 index);
    error WindowNotNewer(uint64 windowId, uint64 lastWindowId);
    error WindowIdMismatch(uint64 windowId, uint64 expected);
    error StaleWindow(uint64 windowEnd, uint256 oldestAccepted);
    error WindowInFuture(uint64 windowEnd, uint256 latestAccepted);
    error InputHashMismatch(uint256 proven, uint256 attested);
    error InvalidSignature(uint256 index);
    error NotAttester(address signer);
    error SignersNotAscending(uint256 index);
    error TooFewSignatures(uint256 got, uint256 required);
    error InvalidProof();
    error ScoreOutOfRange(int256 score);
    error VerifierCodeMismatch(address verifier, bytes32 expected, bytes32 actual);
    error NotGovernance();
    error NotPendingGovernance();
    error NotGuardian();
    error AlreadyTripped();
    error NotTripped();
    error ParameterOutOfBounds(string name);
    error ZeroAddress();
    error NotAContract(address account);
    error AttesterExists(address attester);
    error UnknownAttester(address attester);
    error NoPendingVerifier();
    error TimelockNotElapsed(uint64 eta, uint256 nowTimestamp);
    error BatchesDisabled();
    error BatchSizeMismatch(uint256 got, uint256 expected);
    error WindowsNotConsecutive(uint256 index);

    // ---------------------------------------------------------------- events

    event Report(
        uint64 indexed windowId,
        uint64 windowEnd,
        uint256 inputHash,
        int256 score,
        address indexed submitter,
        bool tripped
    );
    event Tripped(uint64 indexed windowId, address indexed by, bool byGuardian);
    event Recovered(uint64 indexed windowId, address indexed by, bool byGovernance);
    event ParamsChanged(
        uint64 tripThreshold,
        uint64 resetThreshold,
        uint16 tripAfter,
        uint16 resetAfter,
        uint32 cooldown,
        uint32 maxAge
    );
    event QuorumChanged(uint8 quorum);
    event AttesterAdded(address indexed attester);
    event AttesterRemoved(address indexed attester);
    event VerifierChangeProposed(
        address indexed verifier,
        uint8 scoreScale,
        uint32 cadence,
        uint64 eta,
        bytes32 codehash,
        address batchVerifier,
        uint8 batchWindows,
        bytes32 batchCodehash
    );
    event VerifierChangeCancelled(address indexed verifier);
    event VerifierChanged(address indexed previous, address indexed verifier, uint8 scoreScale, uint32 cadence);
    event BatchVerifierChanged(address indexed previous, address indexed verifier, uint8 windows);
    event GovernanceTransferStarted(address indexed governance, address indexed pending);
    event GovernanceChanged(address indexed previous, address indexed governance);
    event GuardianChanged(address indexed previous, address indexed guardian);

    // ---------------------------------------------------------------- construction

    modifier onlyGovernance() {
        if (msg.sender != governance) revert NotGovernance();
        _;
    }

    constructor(
        address verifier_,
        uint8 scoreScale_,
        uint32 cadence_,
        Params memory params_,
        address[] memory attesters_,
        address governance_,
        address guardian_,
        uint256 timelockDelay_,
        address batchVerifier_,
        uint8 batchWindows_
    ) EIP712("SentinelBreaker", "1") {
        if (governance_ == address(0) || guardian_ == address(0)) revert ZeroAddress();
        if (timelockDelay_ < MIN_TIMELOCK || timelockDelay_ > MAX_TIMELOCK) revert ParameterOutOfBounds("timelockDelay");
        timelockDelay = timelockDelay_;
        governance = governance_;
        guardian = guardian_;
        emit GovernanceChanged(address(0), governance_);
        emit GuardianChanged(address(0), guardian_);
        _setVerifier(verifier_, scoreScale_, cadence_);
        _setBatchVerifier(batchVerifier_, batchWindows_);
        for (uint256 i = 0; i < attesters_.length; ++i) _addAttester(attesters_[i]);
        _setParams(params_);
        _setQuorum(params_.quorum);
    }

    // ---------------------------------------------------------------- reports

    /// @notice Submit a proven, attested risk score for one window.
    function submit(
        bytes calldata proof,
        uint256[] calldata instances,
        Attestation calldata attestation,
        bytes[] calldata signatures
    ) external {
        if (instances.length != NUM_INSTANCES) revert InstanceCountMismatch(instances.length, NUM_INSTANCES);
        _checkInField(instances);
        State memory s = state;
        Params memory p = params;
        uint64 c = cadence;
        _checkWindow(attestation, s, p.maxAge, c);
        _checkAttested(attestation, instances[INPUT_HASH_INDEX], signatures, p.quorum);
        _verify(verifier, proof, instances);
        state = _apply(s, p, attestation, _checkedScore(instances[SCORE_INDEX], scoreScale), c);
    }

    /// @notice Submit `batchWindows` consecutive windows, each attested, proven together by one batch proof
    /// (instances: the K input hashes, then the K scores, windows in ascending order). Accepted exactly when
    /// K single submits of the same windows would each be (but for the proof), with the same state after it.
    function submitBatch(
        bytes calldata proof,
        uint256[] calldata instances,
        Attestation[] calldata attestations,
        bytes[][] calldata signatures
    ) external {
        State memory s = _checkBatch(instances, attestations, signatures);
        _verify(batchVerifier, proof, instances);
        state = _applyBatch(s, instances, attestations);
    }

    /// @notice Whether the breaker is tripped (what guarded protocols read).
    function tripped() external view returns (bool) {
        return state.tripped;
    }

    /// @notice Whether one more high window would trip the breaker: a run of `tripAfter - 1` high windows that
    /// the next window can still extend (it can still be reported). The tripping report may sit in a public
    /// mempool where anyone reads its score, so guarded protocols throttle outflows while armed: a withdrawal
    /// that outbids the report cannot take everything. Never armed with `tripAfter == 1` (no warning exists).
    function armed() external view returns (bool) {
        State memory s = state;
        Params memory p = params;
        if (s.tripped || s.highStreak == 0 || uint256(s.highStreak) + 1 < p.tripAfter) return false;
        uint256 c = cadence;
        // The window after the last one ends before (lastId + 2) * c and can be reported until maxAge after.
        return block.timestamp <= (uint256(s.lastWindowEnd) / c + 2) * c + p.maxAge;
    }

    /// @notice The id of the last accepted window (at the cadence in force when it was accepted).
    function lastWindowId() external view returns (uint64) {
        return state.lastWindowId;
    }

    /// @notice The EIP-712 domain separator (recomputed if the chain id changed since deployment).
    function domainSeparator() public view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The EIP-712 digest attesters sign for `attestation`.
    function attestationDigest(Attestation calldata attestation) external view returns (bytes32) {
        return _attestationDigest(attestation);
    }

    /// @notice Decode a score felt at `scale` to WAD, as `submit` does.
    function scoreWad(uint256 felt, uint8 scale) external pure returns (int256) {
        if (felt >= BN254_R) revert InstanceNotInField(0);
        return _scoreWad(felt, scale);
    }

    function attesters() external view returns (address[] memory) {
        return attesterList;
    }

    function attesterCount() external view returns (uint256) {
        return attesterList.length;
    }

    // ---------------------------------------------------------------- guardian and governance

    /// @notice Trip by hand. The guardian (or governance) can trip; nobody but governance can un-trip.
    /// While the breaker is tripped by its reports, this makes the trip a manual one, which reports no
    /// longer lift.
    function trip() external {
        if (msg.sender != guardian && msg.sender != governance) revert NotGuardian();
        State memory s = state;
        if (s.manual) revert AlreadyTripped();
        if (!s.tripped) s.trippedAt = uint64(block.timestamp);
        s.tripped = true;
        s.manual = true;
        s.highStreak = 0;
        s.lowStreak = 0;
        state = s;
        emit Tripped(s.lastWindowId, msg.sender, true);
    }

    /// @notice Governance override: recover now, without waiting for low scores or the cooldown.
    function recover() external onlyGovernance {
        State memory s = state;
        if (!s.tripped) revert NotTripped();
        s.tripped = false;
        s.manual = false;
        s.trippedAt = 0;
        s.highStreak = 0;
        s.lowStreak = 0;
        state = s;
        emit Recovered(s.lastWindowId, msg.sender, true);
    }

    /// @notice Change the state machine's parameters (each bounded; quorum unchanged); resets the streaks:
    /// runs counted under other thresholds are not runs under these.
    function setParams(Params calldata p) external onlyGovernance {
        Params memory next = p;
        next.quorum = params.quorum;
        _setParams(next);
        state.highStreak = 0;
        state.lowStreak = 0;
    }

    function setQuorum(uint8 quorum) external onlyGovernance {
        _setQuorum(quorum);
    }

    function addAttester(address attester) external onlyGovernance {
        _addAttester(attester);
    }

    function removeAttester(address attester) external onlyGovernance {
        if (!isAttester[attester]) revert UnknownAttester(attester);
        if (attesterList.length - 1 < params.quorum) revert ParameterOutOfBounds("quorum");
        isAttester[attester] = false;
        uint256 n = attesterList.length;
        for (uint256 i = 0; i < n; ++i) {
            if (attesterList[i] == attester) {
                attesterList[i] = attesterList[n - 1];
                attesterList.pop();
                break;
            }
        }
        emit AttesterRemoved(attester);
    }

    function setGuardian(address guardian_) external onlyGovernance {
        if (guardian_ == address(0)) revert ZeroAddress();
        emit GuardianChanged(guardian, guardian_);
        guardian = guardian_;
    }

    /// @notice Two-step governance handover: the new governance must accept (no transfer to a typo).
    function transferGovernance(address governance_) external onlyGovernance {
        if (governance_ == address(0)) revert ZeroAddress();
        pendingGovernance = governance_;
        emit GovernanceTransferStarted(governance, governance_);
    }

    function acceptGovernance() external {
        if (msg.sender != pendingGovernance) revert NotPendingGovernance();
        emit GovernanceChanged(governance, msg.sender);
        governance = msg.sender;
        pendingGovernance = address(0);
    }

    /// @notice Start the timelock for a new verifier (a new model); replaces any pending proposal.
    /// @param codehash the `extcodehash` reviewers expect (the verifier rendered from the published vk):
    /// checked now and again at execute, so the code reviewed during the delay is the code that runs.
    /// @param batchVerifier_ the same model's batch verifier (zero, with `batchWindows_` 0 and `batchCodehash`
    /// zero, to disable batches), pinned by `batchCodehash` as the verifier is by `codehash`.
    function proposeVerifier(
        address verifier_,
        uint8 scoreScale_,
        uint32 cadence_,
        bytes32 codehash,
        address batchVerifier_,
        uint8 batchWindows_,
        bytes32 batchCodehash
    ) external onlyGovernance {
        _checkVerifier(verifier_, scoreScale_, cadence_);
        _checkCodehash(verifier_, codehash);
        _checkBatchVerifier(batchVerifier_, batchWindows_);
        _checkBatchCodehash(batchVerifier_, batchCodehash);
        uint64 eta = uint64(block.timestamp + timelockDelay);
        pendingVerifier = verifier_;
        pendingScoreScale = scoreScale_;
        pendingCadence = cadence_;
        pendingVerifierEta = eta;
        pendingVerifierCodehash = codehash;
        pendingBatchVerifier = batchVerifier_;
        pendingBatchWindows = batchWindows_;
        pendingBatchVerifierCodehash = batchCodehash;
        emit VerifierChangeProposed(
            verifier_, scoreScale_, cadence_, eta, codehash, batchVerifier_, batchWindows_, batchCodehash
        );
    }

    function cancelVerifier() external onlyGovernance {
        address pending = pendingVerifier;
        if (pending == address(0)) revert NoPendingVerifier();
        _clearPending();
        emit VerifierChangeCancelled(pending);
    }

    /// @notice Switch to the proposed verifier and batch verifier once the timelock has elapsed; resets the
    /// streaks.
    function executeVerifier() external onlyGovernance {
        address pending = pendingVerifier;
        if (pending == address(0)) revert NoPendingVerifier();
        if (block.timestamp < pendingVerifierEta) revert TimelockNotElapsed(pendingVerifierEta, block.timestamp);
        _checkCodehash(pending, pendingVerifierCodehash);
        address pendingBatch = pendingBatchVerifier;
        _checkBatchCodehash(pendingBatch, pendingBatchVerifierCodehash);
        uint8 scale = pendingScoreScale;
        uint32 nextCadence = pendingCadence;
        uint8 windows = pendingBatchWindows;
        _clearPending();
        _setVerifier(pending, scale, nextCadence);
        _setBatchVerifier(pendingBatch, windows);
        // Scores of the old model and the new one are not one series.
        state.highStreak = 0;
        state.lowStreak = 0;
    }

    // ---------------------------------------------------------------- internals

    function _checkInField(uint256[] calldata instances) internal pure {
        for (uint256 i = 0; i < instances.length; ++i) {
            if (instances[i] >= BN254_R) revert InstanceNotInField(i);
        }
    }

    /// @dev A window's id is its end at the cadence in force, it is newer than the last accepted window, and
    /// it is neither stale nor from the future.
    function _checkWindow(Attestation calldata a, State memory s, uint32 maxAge, uint64 c) internal view {
        uint64 windowId = a.windowId;
        uint64 windowEnd = a.windowEnd;
        if (windowId != windowEnd / c) revert WindowIdMismatch(windowId, windowEnd / c);
        // The last window's id at the cadence in force (a verifier change may have changed the cadence).
        uint64 lastId = s.lastWindowEnd / c;
        if (s.lastWindowEnd != 0 && windowId <= lastId) revert WindowNotNewer(windowId, lastId);
        if (uint256(windowEnd) + maxAge < block.timestamp) revert StaleWindow(windowEnd, block.timestamp - maxAge);
        if (windowEnd > block.timestamp + FUTURE_SKEW) revert WindowInFuture(windowEnd, block.timestamp + FUTURE_SKEW);
    }

    /// @dev The proven input hash is the attested one, and a quorum of attesters signed the attestation.
    function _checkAttested(Attestation calldata a, uint256 provenHash, bytes[] calldata signatures, uint8 quorum)
        internal
        view
    {
        if (provenHash != a.inputHash) revert InputHashMismatch(provenHash, a.inputHash);
        _checkSignatures(_attestationDigest(a), signatures, quorum);
    }

    function _verify(IHalo2Verifier v, bytes calldata proof, uint256[] calldata instances) internal {
        try v.verifyProof(proof, instances) returns (bool ok) {
            if (!ok) revert InvalidProof();
        } catch {
            revert InvalidProof();
        }
    }

    /// @dev `submitBatch`'s checks before the proof: sizes, field, consecutive ids, then each window as `submit`
    /// checks its one (id, newer, staleness, future, proven hash, signatures). Returns the state they were
    /// checked against.
    function _checkBatch(
        uint256[] calldata instances,
        Attestation[] calldata attestations,
        bytes[][] calldata signatures
    ) internal view returns (State memory s) {
        uint256 k = batchWindows;
        if (k == 0) revert BatchesDisabled();
        if (attestations.length != k) revert BatchSizeMismatch(attestations.length, k);
        if (signatures.length != k) revert BatchSizeMismatch(signatures.length, k);
        if (instances.length != 2 * k) revert BatchSizeMismatch(instances.length, 2 * k);
        _checkInField(instances);
        s = state;
        Params memory p = params;
        uint64 c = cadence;
        for (uint256 i = 0; i < k; ++i) {
            if (attestations[i].windowId != attestations[0].windowId + i) revert WindowsNotConsecutive(i);
            // Later windows follow the first, so only the first can be older than the last accepted one.
            _checkWindow(attestations[i], s, p.maxAge, c);
            _checkAttested(attestations[i], instances[i], signatures[i], p.quorum);
        }
    }

    /// @dev Each window of a proven batch through the state machine, in order (scores after the K hashes).
    function _applyBatch(State memory s, uint256[] calldata instances, Attestation[] calldata attestations)
        internal
        returns (State memory)
    {
        Params memory p = params;
        uint64 c = cadence;
        uint8 scale = scoreScale;
        uint256 k = attestations.length;
        for (uint256 i = 0; i < k; ++i) {
            s = _apply(s, p, attestations[i], _checkedScore(instances[k + i], scale), c);
        }
        return s;
    }

    /// @dev A score felt as WAD; a score outside [0, 1] (beyond SCORE_SLACK) is refused.
    function _checkedScore(uint256 felt, uint8 scale) internal pure returns (int256 score) {
        score = _scoreWad(felt, scale);
        if (score < -SCORE_SLACK || score > int256(WAD) + SCORE_SLACK) revert ScoreOutOfRange(score);
    }

    /// @dev The state machine: one accepted window scoring `score` (WAD) moves `s`; emits Tripped or
    /// Recovered when it does, then Report. The one rule for `submit` and `submitBatch`.
    function _apply(State memory s, Params memory p, Attestation calldata a, int256 score, uint64 c)
        internal
        returns (State memory)
    {
        uint64 windowId = a.windowId;
        if (s.lastWindowEnd == 0 || windowId != s.lastWindowEnd / c + 1) {
            // A gap: the windows in between were not reported, so they count neither high nor calm and no
            // run spans them. Skipping windows can end a run, never build one.
            s.highStreak = 0;
            s.lowStreak = 0;
        }
        s.lastWindowId = windowId;
        s.lastWindowEnd = a.windowEnd;
        s.highStreak = score >= int256(uint256(p.tripThreshold)) ? _inc(s.highStreak) : 0;
        s.lowStreak = score <= int256(uint256(p.resetThreshold)) ? _inc(s.lowStreak) : 0;
        if (!s.tripped) {
            if (s.highStreak >= p.tripAfter) {
                s.tripped = true;
                s.trippedAt = uint64(block.timestamp);
                s.lowStreak = 0;
                emit Tripped(windowId, msg.sender, false);
            }
        } else if (!s.manual && s.lowStreak >= p.resetAfter && block.timestamp >= uint256(s.trippedAt) + p.cooldown) {
            s.tripped = false;
            s.trippedAt = 0;
            s.highStreak = 0;
            s.lowStreak = 0;
            emit Recovered(windowId, msg.sender, false);
        }
        emit Report(windowId, a.windowEnd, a.inputHash, score, msg.sender, s.tripped);
        return s;
    }

    function _attestationDigest(Attestation calldata a) internal view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(ATTESTATION_TYPEHASH, a.windowId, a.windowEnd, a.inputHash));
        return _hashTypedDataV4(structHash);
    }

    /// @dev Signers must be registered, distinct (strictly ascending addresses) and at least `quorum`.
    function _checkSignatures(bytes32 digest, bytes[] calldata signatures, uint256 quorum) internal view {
        if (signatures.length < quorum) revert TooFewSignatures(signatures.length, quorum);
        address previous = address(0);
        for (uint256 i = 0; i < signatures.length; ++i) {
            // OpenZeppelin's ECDSA: 65-byte signatures only, low s (no malleable twins), no zero signer.
            (address signer, ECDSA.RecoverError failure,) = ECDSA.tryRecover(digest, signatures[i]);
            if (failure != ECDSA.RecoverError.NoError) revert InvalidSignature(i);
            if (signer <= previous) revert SignersNotAscending(i);
            if (!isAttester[signer]) revert NotAttester(signer);
            previous = signer;
        }
    }

    /// @dev Signed fixed-point felt at `scale` -> WAD (exact for scale <= 18; clamped far outside [0, 1]).
    function _scoreWad(uint256 felt, uint8 scale) internal pure returns (int256) {
        int256 v = felt > HALF_R ? -int256(BN254_R - felt) : int256(felt);
        if (v > SCORE_CLAMP) v = SCORE_CLAMP;
        if (v < -SCORE_CLAMP) v = -SCORE_CLAMP;
        return (v * int256(WAD)) / int256(uint256(1) << scale);
    }

    function _inc(uint16 x) internal pure returns (uint16) {
        return x == type(uint16).max ? x : x + 1;
    }

    function _setParams(Params memory p) internal {
        if (p.tripThreshold < MIN_TRIP_THRESHOLD || p.tripThreshold > MAX_TRIP_THRESHOLD) {
            revert ParameterOutOfBounds("tripThreshold");
        }
        if (uint256(p.resetThreshold) + MIN_HYSTERESIS > p.tripThreshold) revert ParameterOutOfBounds("resetThreshold");
        if (p.tripAfter == 0 || p.tripAfter > MAX_TRIP_AFTER) revert ParameterOutOfBounds("tripAfter");
        if (p.resetAfter == 0 || p.resetAfter > MAX_RESET_AFTER) revert ParameterOutOfBounds("resetAfter");
        if (p.cooldown < MIN_COOLDOWN || p.cooldown > MAX_COOLDOWN) revert ParameterOutOfBounds("cooldown");
        if (p.maxAge < MIN_MAX_AGE || p.maxAge > MAX_MAX_AGE) revert ParameterOutOfBounds("maxAge");
        params = p;
        emit ParamsChanged(p.tripThreshold, p.resetThreshold, p.tripAfter, p.resetAfter, p.cooldown, p.maxAge);
    }

    function _setQuorum(uint8 quorum) internal {
        if (quorum == 0 || quorum > attesterList.length) revert ParameterOutOfBounds("quorum");
        params.quorum = quorum;
        emit QuorumChanged(quorum);
    }

    function _addAttester(address attester) internal {
        if (attester == address(0)) revert ZeroAddress();
        if (isAttester[attester]) revert AttesterExists(attester);
        if (attesterList.length >= MAX_ATTESTERS) revert ParameterOutOfBounds("attesters");
        isAttester[attester] = true;
        attesterList.push(attester);
        emit AttesterAdded(attester);
    }

    function _checkVerifier(address verifier_, uint8 scoreScale_, uint32 cadence_) internal view {
        if (verifier_ == address(0)) revert ZeroAddress();
        if (verifier_.code.length == 0) revert NotAContract(verifier_);
        if (scoreScale_ > MAX_SCORE_SCALE) revert ParameterOutOfBounds("scoreScale");
        if (cadence_ == 0 || cadence_ > MAX_CADENCE) revert ParameterOutOfBounds("cadence");
    }

    function _checkCodehash(address verifier_, bytes32 expected) internal view {
        bytes32 actual = verifier_.codehash;
        if (actual != expected) revert VerifierCodeMismatch(verifier_, expected, actual);
    }

    /// @dev Zero with 0 windows (batches disabled), else a contract taking MIN..MAX_BATCH_WINDOWS windows.
    function _checkBatchVerifier(address verifier_, uint8 windows) internal view {
        if (verifier_ == address(0)) {
            if (windows != 0) revert ZeroAddress();
            return;
        }
        if (verifier_.code.length == 0) revert NotAContract(verifier_);
        if (windows < MIN_BATCH_WINDOWS || windows > MAX_BATCH_WINDOWS) revert ParameterOutOfBounds("batchWindows");
    }

    function _setBatchVerifier(address verifier_, uint8 windows) internal {
        _checkBatchVerifier(verifier_, windows);
        emit BatchVerifierChanged(address(batchVerifier), verifier_, windows);
        batchVerifier = IHalo2Verifier(verifier_);
        batchWindows = windows;
    }

    /// @dev No batch verifier is pinned by a zero code hash (an empty account's hash differs between chains).
    function _checkBatchCodehash(address verifier_, bytes32 expected) internal view {
        if (verifier_ != address(0)) {
            _checkCodehash(verifier_, expected);
        } else if (expected != bytes32(0)) {
            revert VerifierCodeMismatch(verifier_, expected, bytes32(0));
        }
    }

    function _setVerifier(address verifier_, uint8 scoreScale_, uint32 cadence_) internal {
        _checkVerifier(verifier_, scoreScale_, cadence_);
        emit VerifierChanged(address(verifier), verifier_, scoreScale_, cadence_);
        verifier = IHalo2Verifier(verifier_);
        scoreScale = scoreScale_;
        cadence = cadence_;
    }

    function _clearPending() internal {
        pendingVerifier = address(0);
        pendingScoreScale = 0;
        pendingCadence = 0;
        pendingVerifierEta = 0;
        pendingVerifierCodehash = bytes32(0);
        pendingBatchVerifier = address(0);
        pendingBatchWindows = 0;
        pendingBatchVerifierCodehash = bytes32(0);
    }
}
