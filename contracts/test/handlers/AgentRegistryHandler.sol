// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {AgentRegistry} from "../../src/AgentRegistry.sol";
import {MockERC1271Wallet} from "../mocks/MockERC1271Wallet.sol";

/// @notice Drives the stake bond of AgentRegistry with a fixed actor set. Slash recipients include
///         a wallet that toggles ETH rejection so the pull-payment path is exercised.
contract AgentRegistryHandler is CommonBase, StdCheats, StdUtils {
    AgentRegistry public immutable reg;
    address public immutable escrow;
    MockERC1271Wallet public immutable flakyRecipient;

    address[] public actors;
    address[] public recipients;

    uint256 public ghostStaked;
    uint256 public ghostWithdrawnUnbonded;
    uint256 public ghostSlashed;
    uint256 public ghostSlashPaidOut; // pushed or pulled to recipients

    constructor(AgentRegistry reg_, address escrow_) {
        reg = reg_;
        escrow = escrow_;
        for (uint256 i; i < 4; ++i) {
            actors.push(makeAddr(string(abi.encodePacked("reef.staker", vm.toString(i)))));
        }
        flakyRecipient = new MockERC1271Wallet(address(this));
        recipients.push(makeAddr("reef.poster"));
        recipients.push(address(flakyRecipient));
    }

    function stake(uint256 actorSeed, uint256 amount) external {
        address a = actors[actorSeed % actors.length];
        amount = bound(amount, 1, 100 ether);
        vm.deal(a, a.balance + amount);
        vm.prank(a);
        reg.stake{value: amount}();
        ghostStaked += amount;
    }

    function requestUnbond(uint256 actorSeed, uint256 amount) external {
        address a = actors[actorSeed % actors.length];
        uint256 bonded = reg.stakeOf(a);
        if (bonded == 0) return;
        amount = bound(amount, 1, bonded);
        vm.prank(a);
        reg.requestUnbond(amount);
    }

    function withdrawUnbonded(uint256 actorSeed) external {
        address a = actors[actorSeed % actors.length];
        (uint256 amount, uint256 releaseAt) = reg.unbondingOf(a);
        if (amount == 0 || block.timestamp < releaseAt) return;
        vm.prank(a);
        ghostWithdrawnUnbonded += reg.withdrawUnbonded();
    }

    function slash(uint256 actorSeed, uint256 amount, uint256 toSeed, bool reject) external {
        address a = actors[actorSeed % actors.length];
        address to = recipients[toSeed % recipients.length];
        flakyRecipient.setRejectEth(reject);
        (uint256 unbonding,) = reg.unbondingOf(a);
        amount = bound(amount, 0, reg.stakeOf(a) + unbonding + 1 ether);
        uint256 before = to.balance;
        vm.prank(escrow);
        uint256 slashed = reg.slash(a, amount, to);
        ghostSlashed += slashed;
        ghostSlashPaidOut += to.balance - before;
    }

    function withdrawSlashed() external {
        if (reg.pendingSlashedOf(address(flakyRecipient)) == 0) return;
        flakyRecipient.setRejectEth(false);
        uint256 before = address(flakyRecipient).balance;
        vm.prank(address(flakyRecipient));
        reg.withdrawSlashed();
        ghostSlashPaidOut += address(flakyRecipient).balance - before;
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 10 days));
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function recipientCount() external view returns (uint256) {
        return recipients.length;
    }
}
