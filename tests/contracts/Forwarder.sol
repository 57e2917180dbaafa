// SPDX-License-Identifier: MIT
pragma solidity 0.8.20;

/// @notice Test fixture: passes calls on to another contract, as a smart-contract wallet, a multicall or an
/// EIP-7702 delegated account does, so the breaker sees this contract as msg.sender and the transaction's
/// own input is not a `submit` call.
contract Forwarder {
    error ForwardFailed(bytes reason);

    /// @notice Call `target` with `data`; bubble up its revert.
    function forward(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory out) = target.call(data);
        if (!ok) revert ForwardFailed(out);
        return out;
    }

    /// @notice Call `target` with each of `data` in turn. A call flagged in `mayFail` that reverts is skipped (its
    /// effects undone); any other that reverts reverts the whole call (so gas estimation covers every call).
    function forwardEach(address target, bytes[] calldata data, bool[] calldata mayFail) external {
        for (uint256 i = 0; i < data.length; ++i) {
            (bool ok, bytes memory out) = target.call(data[i]);
            if (!ok && !mayFail[i]) revert ForwardFailed(out);
        }
    }
}
