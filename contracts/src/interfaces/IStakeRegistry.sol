// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Stake bond interface the escrow uses (implemented by AgentRegistry).
interface IStakeRegistry {
    /// @notice Native-ETH stake currently bonded by `account` (excludes funds already unbonding).
    function stakeOf(address account) external view returns (uint256);

    /// @notice Slash up to `amount` of `account`'s stake (bonded first, then unbonding) to `to`.
    /// @dev Only callable by the escrow set at construction. Returns what was actually slashed.
    function slash(address account, uint256 amount, address to) external returns (uint256 slashed);
}
