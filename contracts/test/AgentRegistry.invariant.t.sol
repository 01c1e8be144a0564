// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {AgentRegistry} from "../src/AgentRegistry.sol";
import {AgentRegistryHandler} from "./handlers/AgentRegistryHandler.sol";

contract AgentRegistryInvariantTest is Test {
    AgentRegistry internal reg;
    AgentRegistryHandler internal handler;
    address internal escrow = makeAddr("escrow");

    function setUp() public {
        reg = new AgentRegistry(address(this), 3 days);
        reg.setEscrow(escrow);
        handler = new AgentRegistryHandler(reg, escrow);
        targetContract(address(handler));
    }

    /// @dev balance == Σ bonded + Σ unbonding + Σ pending slashed withdrawals.
    function invariant_StakeAccounting() public view {
        uint256 sum;
        uint256 n = handler.actorCount();
        for (uint256 i; i < n; ++i) {
            address a = handler.actors(i);
            (uint256 unbonding,) = reg.unbondingOf(a);
            sum += reg.stakeOf(a) + unbonding;
        }
        uint256 m = handler.recipientCount();
        for (uint256 j; j < m; ++j) {
            sum += reg.pendingSlashedOf(handler.recipients(j));
        }
        assertEq(address(reg).balance, sum);
    }

    /// @dev Every wei staked is bonded, unbonding, withdrawn, or slashed; slashed wei is paid out or pending.
    function invariant_ConservationOfStake() public view {
        uint256 n = handler.actorCount();
        uint256 held;
        for (uint256 i; i < n; ++i) {
            address a = handler.actors(i);
            (uint256 unbonding,) = reg.unbondingOf(a);
            held += reg.stakeOf(a) + unbonding;
        }
        assertEq(handler.ghostStaked(), held + handler.ghostWithdrawnUnbonded() + handler.ghostSlashed());
        uint256 pending;
        uint256 m = handler.recipientCount();
        for (uint256 j; j < m; ++j) {
            pending += reg.pendingSlashedOf(handler.recipients(j));
        }
        assertEq(handler.ghostSlashed(), handler.ghostSlashPaidOut() + pending);
    }
}
