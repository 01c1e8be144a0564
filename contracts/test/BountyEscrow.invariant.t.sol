// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {console2} from "forge-std/console2.sol";

import {BountyEscrow} from "../src/BountyEscrow.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {BountyEscrowHandler} from "./handlers/BountyEscrowHandler.sol";

/// @notice Invariants of the escrow over random multi-bounty histories (ETH and one ERC-20).
/// forge-config: default.invariant.depth = 200
/// forge-config: default.invariant.fail-on-revert = true
contract BountyEscrowInvariantTest is Test {
    BountyEscrowHandler internal handler;
    BountyEscrow internal escrow;

    function setUp() public {
        handler = new BountyEscrowHandler();
        escrow = handler.escrow();
        targetContract(address(handler));
    }

    /// @dev Escrow balance per token == Σ amounts of bounties still holding funds + Σ ledger
    ///      (+ dispute bonds of open disputes, in ETH).
    function invariant_EscrowIsExactlySolvent() public view {
        uint256 heldEth;
        uint256 heldToken;
        uint256 n = handler.bountyCount();
        for (uint256 i; i < n; ++i) {
            IBountyTypes.Bounty memory b = handler.record(i);
            (IBountyTypes.Status s,) = escrow.statusOf(handler.ids(i));
            if (s == IBountyTypes.Status.Disputed) heldEth += handler.BOND();
            if (!handler.holdsFunds(s)) continue;
            if (b.token == address(0)) heldEth += b.amount;
            else if (b.token == address(handler.token())) heldToken += b.amount;
        }
        assertEq(address(escrow).balance, heldEth + handler.ledgerSum(address(0)), "ETH solvency");
        assertEq(
            handler.token().balanceOf(address(escrow)),
            heldToken + handler.ledgerSum(address(handler.token())),
            "token solvency"
        );
    }

    /// @dev Every pledge is accounted for, credit for credit: what its sub-bounties still hold,
    ///      the credits they paid out (and the backing held for nested pledges), and the credits
    ///      already redeemed add up to what was pledged.
    function invariant_PledgesAreExactlyCovered() public view {
        uint256 m = handler.pledgeTokenCount();
        uint256 n = handler.bountyCount();
        for (uint256 k; k < m; ++k) {
            address pt = handler.pledgeTokens(k);
            uint256 live;
            for (uint256 i; i < n; ++i) {
                IBountyTypes.Bounty memory b = handler.record(i);
                if (b.token != pt) continue;
                (IBountyTypes.Status s,) = escrow.statusOf(handler.ids(i));
                if (handler.holdsFunds(s)) live += b.amount;
            }
            (uint128 pledged, uint128 backed) = escrow.pledges(pt);
            assertEq(pledged, live + handler.ledgerSum(pt) + handler.redeemedCredit(pt), "pledge covered");
            assertLe(handler.redeemedPaid(pt), backed, "never redeemed past the backing");
        }
    }

    /// @dev Completed / Expired / Resolved / Cancelled / Refunded never change again.
    function invariant_TerminalStatesAreFinal() public view {
        assertFalse(handler.terminalLeft());
    }

    /// @dev A bounty never releases more than its amount; a funded bounty releases exactly its
    ///      amount once terminal, and nothing while it still holds funds.
    function invariant_NothingPaidTwice() public view {
        uint256 n = handler.bountyCount();
        for (uint256 i; i < n; ++i) {
            IBountyTypes.Bounty memory b = handler.record(i);
            (IBountyTypes.Status s,) = escrow.statusOf(handler.ids(i));
            uint256 paid = handler.paid(i);
            assertLe(paid, b.amount, "paid <= amount");
            if (handler.isTerminal(s)) {
                assertEq(paid, handler.funded(i) ? b.amount : 0, "terminal releases all");
            } else {
                assertEq(paid, 0, "live bounty released nothing");
            }
        }
    }

    /// @dev The record rebuilt from the handler's view of the lifecycle always matches the commitment.
    function invariant_RecordsMatchCommitments() public view {
        uint256 n = handler.bountyCount();
        for (uint256 i; i < n; ++i) {
            IBountyTypes.Status s = escrow.verifyRecord(handler.ids(i), handler.record(i));
            assertTrue(s != IBountyTypes.Status.None);
        }
    }

    /// @dev Issue 18: a lost dispute slashes at most what the provider signed in its bid's `bond`
    ///      (times `slashBps`), in stake units, whatever the reward token and price.
    function invariant_SlashNeverExceedsTheSignedBond() public view {
        assertFalse(handler.slashOverBond());
        assertLe(handler.ghost_slashed(), handler.ghost_bondsSlashable());
    }

    /// @dev Coverage summary (run with -vv): how many escrow calls of each kind succeeded.
    function afterInvariant() external view {
        string[21] memory names = [
            "postAndFund",
            "fund",
            "award",
            "reassign",
            "revokeAward",
            "submit",
            "submitAndAttest",
            "attest",
            "claimAfterReview",
            "finalizeRejection",
            "refundExpired",
            "cancel",
            "dispute",
            "resolve",
            "submitEntry",
            "pickWinners",
            "withdraw",
            "postFromReward",
            "redeemPledge",
            "collectFees",
            "warp"
        ];
        for (uint256 i; i < names.length; ++i) {
            console2.log(names[i], handler.hits(bytes32(bytes(names[i]))));
        }
    }
}
