// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title Exact pull-in, never-blocking push-out, and a pull ledger for what could not be pushed
/// @notice Shared by the contracts that hold and pay out funds (`BountyEscrow`, `EvaluatorPanel`).
///         Every outgoing payment is attempted once with `_pay`; if it fails (an ETH recipient
///         that reverts or needs too much gas, a token that refuses the transfer) the amount is
///         credited to `withdrawable[token][to]`, and the owner pulls it with `withdraw` or
///         `withdrawTo`. So no recipient can block a settlement.
abstract contract PullLedger is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Gas forwarded when pushing native ETH; a recipient needing more is paid via the ledger.
    uint256 public constant ETH_PAYOUT_GAS = 100_000;

    /// @notice Pull ledger: token (address(0) = ETH) => account => claimable amount.
    mapping(address token => mapping(address account => uint256)) public withdrawable;

    /// @notice A push payment failed and was credited to the pull ledger instead.
    event PayoutDeferred(address indexed token, address indexed to, uint256 amount);
    /// @notice `account` withdrew `amount` of `token` from the ledger to `to`.
    event Withdrawn(address indexed token, address indexed account, address to, uint256 amount);

    /// @notice A zero address where an account is required.
    error ZeroAddress();
    /// @notice msg.value does not match what the call requires.
    error InvalidValue();
    /// @notice The token delivered less than the amount transferred.
    error FeeOnTransferToken();
    /// @notice Nothing is credited to msg.sender in this token.
    error NothingToWithdraw();
    /// @notice The ETH withdrawal transfer failed.
    error TransferFailed();

    /// @notice Withdraws everything credited to msg.sender in `token` (address(0) = ETH).
    /// @param token Token to withdraw.
    function withdraw(address token) external nonReentrant {
        _withdraw(token, msg.sender);
    }

    /// @notice Withdraws everything credited to msg.sender in `token` to another address
    ///         (e.g. when msg.sender cannot receive ETH or is blacklisted by the token).
    /// @param token Token to withdraw.
    /// @param to Recipient.
    function withdrawTo(address token, address to) external nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        _withdraw(token, to);
    }

    /// @dev Pulls exactly `amount` from msg.sender: ETH via msg.value, ERC-20 by transferFrom with
    ///      a balance-delta check (fee-on-transfer tokens are refused).
    function _pull(address token, uint256 amount) internal {
        if (token == address(0)) {
            if (msg.value != amount) revert InvalidValue();
        } else {
            if (msg.value != 0) revert InvalidValue();
            if (amount == 0) return;
            uint256 before = _selfBalance(token);
            IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
            if (_selfBalance(token) - before != amount) revert FeeOnTransferToken();
        }
    }

    /// @dev `token.balanceOf(this)` without the high-level call's code-size check and ABI
    ///      decoder, and reverting like them: with the token's revert data if the call fails,
    ///      without data if it returns less than a word (which covers an address without code:
    ///      such a call "succeeds" with no return data).
    function _selfBalance(address token) private view returns (uint256 bal) {
        assembly ("memory-safe") {
            mstore(0x00, 0x70a08231) // balanceOf(address)
            mstore(0x20, address())
            if iszero(staticcall(gas(), token, 0x1c, 0x24, 0x00, 0x20)) {
                let ptr := mload(0x40)
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            bal := mload(0x00)
        }
    }

    /// @dev Push payment that never reverts: on failure the amount is credited to the pull ledger.
    function _pay(address token, address to, uint256 amount) internal {
        if (amount == 0) return;
        bool ok;
        if (token == address(0)) {
            // Bounded gas and no return-data copy, so a hostile recipient cannot grief the caller.
            assembly ("memory-safe") {
                ok := call(ETH_PAYOUT_GAS, to, amount, 0, 0, 0, 0)
            }
        } else {
            ok = IERC20(token).trySafeTransfer(to, amount);
        }
        if (!ok) {
            withdrawable[token][to] += amount;
            emit PayoutDeferred(token, to, amount);
        }
    }

    /// @dev Sends everything credited to msg.sender in `token` to `to` (full gas; reverts on failure).
    function _withdraw(address token, address to) internal {
        uint256 amount = withdrawable[token][msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        withdrawable[token][msg.sender] = 0;
        emit Withdrawn(token, msg.sender, to, amount);
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert TransferFailed();
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }
}
