// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IBountyLedger} from "../../src/interfaces/IBountyLedger.sol";

/// @notice Test double of the escrow's `verifyRecord`: stores hash(record) and a status per id.
contract MockBountyLedger is IBountyLedger {
    /// @notice The supplied record does not match the stored commitment.
    error BountyMismatch();

    mapping(uint256 => bytes32) public commitment;
    mapping(uint256 => Status) public statusOf;

    /// @notice Store `b` with `status` under `bountyId`.
    function setRecord(uint256 bountyId, Bounty calldata b, Status status) external {
        commitment[bountyId] = keccak256(abi.encode(b));
        statusOf[bountyId] = status;
    }

    /// @inheritdoc IBountyLedger
    function verifyRecord(uint256 bountyId, Bounty calldata b) external view returns (Status) {
        if (commitment[bountyId] != keccak256(abi.encode(b))) revert BountyMismatch();
        return statusOf[bountyId];
    }
}
