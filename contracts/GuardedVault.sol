// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

interface IBreaker {
    function tripped() external view returns (bool);
    function armed() external view returns (bool);
    function lastWindowId() external view returns (uint64);
}

/// @title GuardedVault
/// @notice An example protocol that honours a SentinelBreaker: deposit an ERC-20, borrow against it up to
/// LTV_PERCENT, repay, withdraw. Withdrawals and borrows (the outflows) revert with `BreakerTripped` while
/// the breaker is tripped and resume when it recovers; deposits and repayments (inflows) always work.
/// While the breaker is armed (one more high window trips it) outflows are throttled: at most
/// ARMED_OUTFLOW_BPS of the vault's cash per reported window, so a withdrawal that front-runs the tripping
/// report (its score is public in the mempool) cannot drain the vault.
contract GuardedVault {
    using SafeERC20 for IERC20;

    uint256 public constant LTV_PERCENT = 50;
    uint256 public constant ARMED_OUTFLOW_BPS = 1_000; // 10 % of the cash per window while armed

    IERC20 public immutable asset;
    IBreaker public immutable breaker;

    mapping(address => uint256) public deposits;
    mapping(address => uint256) public debt;
    uint256 public totalDeposits;
    uint256 public totalDebt;
    /// @notice The breaker window the armed-state outflow count belongs to, and the count.
    uint64 public throttleWindow;
    uint256 public throttleOutflow;

    error BreakerTripped();
    error OutflowThrottled(uint256 allowed, uint256 requested);
    error ZeroAmount();
    error InsufficientDeposit(uint256 available, uint256 requested);
    error InsufficientLiquidity(uint256 available, uint256 requested);
    error ExceedsBorrowLimit(uint256 limit, uint256 requested);
    error RepayExceedsDebt(uint256 owed, uint256 requested);
    error ZeroAddress();

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event Borrowed(address indexed account, uint256 amount);
    event Repaid(address indexed account, uint256 amount);

    modifier whenNotTripped() {
        if (breaker.tripped()) revert BreakerTripped();
        _;
    }

    constructor(address asset_, address breaker_) {
        if (asset_ == address(0) || breaker_ == address(0)) revert ZeroAddress();
        asset = IERC20(asset_);
        breaker = IBreaker(breaker_);
    }

    function deposit(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        deposits[msg.sender] += amount;
        totalDeposits += amount;
        _pull(msg.sender, amount);
        emit Deposited(msg.sender, amount);
    }

    function withdraw(uint256 amount) external whenNotTripped {
        if (amount == 0) revert ZeroAmount();
        uint256 free = freeCollateral(msg.sender);
        if (amount > free) revert InsufficientDeposit(free, amount);
        uint256 cash = totalDeposits - totalDebt;
        if (amount > cash) revert InsufficientLiquidity(cash, amount);
        _throttle(amount, cash);
        deposits[msg.sender] -= amount;
        totalDeposits -= amount;
        _push(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    function borrow(uint256 amount) external whenNotTripped {
        if (amount == 0) revert ZeroAmount();
        uint256 limit = borrowLimit(msg.sender);
        if (amount > limit) revert ExceedsBorrowLimit(limit, amount);
        uint256 cash = totalDeposits - totalDebt;
        if (amount > cash) revert InsufficientLiquidity(cash, amount);
        _throttle(amount, cash);
        debt[msg.sender] += amount;
        totalDebt += amount;
        _push(msg.sender, amount);
        emit Borrowed(msg.sender, amount);
    }

    function repay(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 owed = debt[msg.sender];
        if (amount > owed) revert RepayExceedsDebt(owed, amount);
        debt[msg.sender] = owed - amount;
        totalDebt -= amount;
        _pull(msg.sender, amount);
        emit Repaid(msg.sender, amount);
    }

    /// @notice How much more `account` may borrow.
    function borrowLimit(address account) public view returns (uint256) {
        uint256 max = (deposits[account] * LTV_PERCENT) / 100;
        uint256 owed = debt[account];
        return max > owed ? max - owed : 0;
    }

    /// @notice How much of its deposit `account` may withdraw while keeping its debt covered.
    function freeCollateral(address account) public view returns (uint256) {
        uint256 locked = (debt[account] * 100 + LTV_PERCENT - 1) / LTV_PERCENT;
        uint256 deposited = deposits[account];
        return deposited > locked ? deposited - locked : 0;
    }

    /// @notice Whether outflows are open (the breaker is not tripped).
    function open() external view returns (bool) {
        return !breaker.tripped();
    }

    /// @notice Whether outflows are throttled (the breaker is armed).
    function throttled() external view returns (bool) {
        return breaker.armed();
    }

    /// @dev While armed: outflows within one breaker window add up to at most ARMED_OUTFLOW_BPS of the cash the
    /// vault held when the window's first outflow came (cash now + what already left in this window).
    function _throttle(uint256 amount, uint256 cash) internal {
        if (!breaker.armed()) return;
        uint64 window = breaker.lastWindowId();
        if (window != throttleWindow) {
            throttleWindow = window;
            throttleOutflow = 0;
        }
        uint256 used = throttleOutflow + amount;
        uint256 allowed = ((cash + throttleOutflow) * ARMED_OUTFLOW_BPS) / 10_000;
        if (used > allowed) revert OutflowThrottled(allowed > throttleOutflow ? allowed - throttleOutflow : 0, amount);
        throttleOutflow = used;
    }

    function _pull(address from, uint256 amount) internal {
        asset.safeTransferFrom(from, address(this), amount);
    }

    function _push(address to, uint256 amount) internal {
        asset.safeTransfer(to, amount);
    }
}
