// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IBountyTypes} from "./IBountyTypes.sol";

/// @title Read interface of the escrow used by the ReputationRegistry.
interface IBountyLedger is IBountyTypes {
    /// @notice Checks that `b` is the current record of `bountyId` and returns its status.
    /// @dev Reverts with `BountyMismatch` if the record does not match the stored commitment.
    function verifyRecord(uint256 bountyId, Bounty calldata b) external view returns (Status);
}
