// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {BountyEscrow} from "../src/BountyEscrow.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {BountyEscrowFixture} from "./BountyEscrow.t.sol";

/// @notice Take-over: a provider that misses the delivery time promised in its bid (`eta`) loses
///         the job to another bidder (`reassign`) or the poster is refunded (`revokeAward`).
contract BountyEscrowTakeoverTest is BountyEscrowFixture {
    uint32 internal constant ETA = 1 hours;

    address internal runnerUp;
    uint256 internal runnerUpKey;

    function setUp() public override {
        super.setUp();
        (runnerUp, runnerUpKey) = makeAddrAndKey("runnerUp");
        _fundActor(runnerUp);
    }

    /// @dev Posts+funds `b` and awards it to `provider` with `ETA`; `b` keeps the record as posted.
    function _awardWithEta(IBountyTypes.Bounty memory b, uint128 price, uint32 eta)
        internal
        returns (uint256 id, IBountyTypes.Bounty memory awarded)
    {
        id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, price, uint256(keccak256(abi.encode(id))));
        bid.eta = eta;
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(b.poster);
        escrow.award(id, b, bid, sig);
        // A copy: memory structs are references and `b` must stay the record as posted.
        awarded = abi.decode(abi.encode(b), (IBountyTypes.Bounty));
        awarded.provider = provider;
        awarded.price = price;
    }

    /// @dev The runner-up's bid, signed for the record as posted.
    function _runnerUpBid(uint256 id, IBountyTypes.Bounty memory posted, uint256 price, uint32 eta)
        internal
        view
        returns (IBountyTypes.Bid memory bid, bytes memory sig)
    {
        bid = _bid(id, posted, runnerUp, price, 9);
        bid.eta = eta;
        bid.deadline = posted.deadline;
        sig = _signBid(runnerUpKey, bid);
    }

    function test_Award_StampIsDueTime() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        (uint256 id,) = _awardWithEta(b, 600e18, ETA);
        (IBountyTypes.Status s, uint40 stamp) = escrow.statusOf(id);
        assertEq(uint8(s), uint8(IBountyTypes.Status.Awarded));
        assertEq(stamp, block.timestamp + ETA);
    }

    function test_Award_EtaZeroOrBeyondDeadlineMeansDeadline() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        (uint256 id,) = _awardWithEta(b, 600e18, 0);
        (, uint40 stamp) = escrow.statusOf(id);
        assertEq(stamp, b.deadline);

        IBountyTypes.Bounty memory c = _terms(address(token), uint128(AMOUNT));
        (uint256 id2,) = _awardWithEta(c, 600e18, type(uint32).max);
        (, uint40 stamp2) = escrow.statusOf(id2);
        assertEq(stamp2, c.deadline);
    }

    /// @dev Regression (slither `timestamp` triage of `_checkOverdue`): a record word keeps the
    ///      due time in 40 bits. An eta-0 award on a bounty whose deadline is past
    ///      `type(uint40).max` stored the deadline truncated (a due time in 1970), so the poster or
    ///      the evaluator could revoke or reassign the award right away and log a "miss" the
    ///      provider never made. The due time now saturates at `type(uint40).max`.
    function test_Award_EtaZeroWithDeadlineBeyondUint40_NoTakeover() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        posted.deadline = uint64(type(uint40).max) + 7 days;
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, 0);
        (, uint40 stamp) = escrow.statusOf(id);
        assertEq(stamp, type(uint40).max, "due time saturates, does not wrap");

        vm.warp(block.timestamp + 1 hours);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        escrow.revokeAward(id, b);
        (IBountyTypes.Bid memory bid, bytes memory sig) = _runnerUpBid(id, posted, 500e18, 0);
        vm.prank(evaluator);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        escrow.reassign(id, b, bid, sig);

        // The provider still delivers normally.
        bytes32 r = keccak256("result");
        bytes memory att = _signAtt(evaluatorKey, id, r, 1);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, att);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
    }

    function test_Reassign_HandsOverdueJobToRunnerUp() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        (IBountyTypes.Bid memory bid, bytes memory sig) = _runnerUpBid(id, posted, 700e18, 2 hours);
        uint64 due = uint64(block.timestamp + ETA);
        vm.warp(due + 1);

        vm.expectEmit(address(escrow));
        emit BountyEscrow.AwardRevoked(id, provider, due);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyAwarded(id, runnerUp, 700e18, 9, uint64(block.timestamp + 2 hours));
        vm.prank(poster);
        escrow.reassign(id, b, bid, sig);

        // The old record is dead; the new one names the runner-up.
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        escrow.verifyRecord(id, b);
        b.provider = runnerUp;
        b.price = 700e18;
        assertEq(uint8(escrow.verifyRecord(id, b)), uint8(IBountyTypes.Status.Awarded));

        // The late provider can no longer submit; the runner-up can and is paid.
        vm.prank(provider);
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        escrow.submit(id, posted, keccak256("late"));
        bytes32 r = keccak256("result");
        uint256 before = token.balanceOf(runnerUp);
        bytes memory att = _signAttFor(evaluatorKey, id, runnerUp, r, 1);
        vm.prank(runnerUp);
        escrow.submitAndAttest(id, b, r, 1, att);
        uint256 fee = 700e18 * uint256(FEE_BPS) / 10_000;
        assertEq(token.balanceOf(runnerUp) - before, 700e18 - fee);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
    }

    function test_Reassign_ByEvaluator() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        (IBountyTypes.Bid memory bid, bytes memory sig) = _runnerUpBid(id, posted, 500e18, 0);
        vm.warp(block.timestamp + ETA + 1);
        vm.prank(evaluator);
        escrow.reassign(id, b, bid, sig);
        (, uint40 stamp) = escrow.statusOf(id);
        assertEq(stamp, b.deadline, "eta 0: due at the deadline");
    }

    function test_Reassign_RevertsBeforeDue() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        (IBountyTypes.Bid memory bid, bytes memory sig) = _runnerUpBid(id, posted, 500e18, 0);
        vm.warp(block.timestamp + ETA);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        escrow.reassign(id, b, bid, sig);
    }

    function test_Reassign_RevertsAfterDeadline() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        (IBountyTypes.Bid memory bid, bytes memory sig) = _runnerUpBid(id, posted, 500e18, 0);
        vm.warp(b.deadline + 1);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        escrow.reassign(id, b, bid, sig);
    }

    function test_Reassign_RevertsForStrangerAndProvider() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        (IBountyTypes.Bid memory bid, bytes memory sig) = _runnerUpBid(id, posted, 500e18, 0);
        vm.warp(block.timestamp + ETA + 1);
        vm.prank(stranger);
        vm.expectRevert(BountyEscrow.NotPosterOrEvaluator.selector);
        escrow.reassign(id, b, bid, sig);
        vm.prank(runnerUp);
        vm.expectRevert(BountyEscrow.NotPosterOrEvaluator.selector);
        escrow.reassign(id, b, bid, sig);
    }

    function test_Reassign_RevertsToSameProvider() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        IBountyTypes.Bid memory bid = _bid(id, posted, provider, 500e18, 2);
        bytes memory sig = _signBid(providerKey, bid);
        vm.warp(block.timestamp + ETA + 1);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.SameProvider.selector);
        escrow.reassign(id, b, bid, sig);
    }

    function test_Reassign_RevertsForBidOnOtherTerms() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        // Signed for the awarded record instead of the record as posted.
        (IBountyTypes.Bid memory bid, bytes memory sig) = _runnerUpBid(id, b, 500e18, 0);
        vm.warp(block.timestamp + ETA + 1);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.BidMismatch.selector);
        escrow.reassign(id, b, bid, sig);
    }

    function test_Reassign_RevertsForForgedSignatureAndReusedNonce() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        (IBountyTypes.Bid memory bid,) = _runnerUpBid(id, posted, 500e18, 0);
        bytes memory forged = _signBid(providerKey, bid);
        vm.warp(block.timestamp + ETA + 1);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        escrow.reassign(id, b, bid, forged);

        vm.prank(runnerUp);
        escrow.invalidateNonces(0, 1 << 9);
        bytes memory sig = _signBid(runnerUpKey, bid);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.NonceUsed.selector);
        escrow.reassign(id, b, bid, sig);
    }

    function test_Reassign_RevertsOnceSubmitted() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        vm.warp(block.timestamp + ETA + 1);
        // A late delivery that arrives before any take-over is still accepted.
        vm.prank(provider);
        escrow.submit(id, b, keccak256("late but here"));
        b.resultHash = keccak256("late but here");
        (IBountyTypes.Bid memory bid, bytes memory sig) = _runnerUpBid(id, posted, 500e18, 0);
        vm.prank(poster);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Submitted)
        );
        escrow.reassign(id, b, bid, sig);
    }

    function test_RevokeAward_RefundsPoster() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        uint64 due = uint64(block.timestamp + ETA);
        vm.warp(due + 1);
        uint256 before = token.balanceOf(poster);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.AwardRevoked(id, provider, due);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyRefunded(id, poster, AMOUNT, IBountyTypes.Status.Expired);
        vm.prank(evaluator);
        escrow.revokeAward(id, b);
        assertEq(token.balanceOf(poster) - before, AMOUNT);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Expired));
    }

    function test_RevokeAward_RevertsBeforeDueAndForStranger() public {
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, 600e18, ETA);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        escrow.revokeAward(id, b);
        vm.warp(block.timestamp + ETA + 1);
        vm.prank(provider);
        vm.expectRevert(BountyEscrow.NotPosterOrEvaluator.selector);
        escrow.revokeAward(id, b);
    }

    function test_RevokeAward_RevertsForFundedBounty() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        vm.prank(poster);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Funded)
        );
        escrow.revokeAward(id, b);
    }

    /// @dev Any number of take-overs keeps the books exact: the final provider gets its price
    ///      minus fee and the poster the rest of the budget.
    function testFuzz_Reassign_ChainOfTakeovers(uint8 rounds, uint128 price, uint32 eta) public {
        rounds = uint8(bound(rounds, 1, 5));
        price = uint128(bound(price, 1, AMOUNT));
        eta = uint32(bound(eta, 1, 1 days));
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        (uint256 id, IBountyTypes.Bounty memory b) = _awardWithEta(posted, price, eta);
        address last = provider;
        for (uint256 i; i < rounds; ++i) {
            (address next, uint256 key) = makeAddrAndKey(string(abi.encode("bidder", i)));
            IBountyTypes.Bid memory bid = _bid(id, posted, next, price, i);
            bid.eta = eta;
            bid.deadline = posted.deadline;
            bytes memory sig = _signBid(key, bid);
            (, uint40 due) = escrow.statusOf(id);
            if (due >= posted.deadline) break;
            vm.warp(uint256(due) + 1);
            vm.prank(poster);
            escrow.reassign(id, b, bid, sig);
            b.provider = next;
            last = next;
        }
        uint256 posterBefore = token.balanceOf(poster);
        bytes32 r = keccak256("r");
        bytes memory att = _signAttFor(evaluatorKey, id, last, r, 1);
        vm.prank(last);
        escrow.submitAndAttest(id, b, r, 1, att);
        uint256 fee = uint256(price) * FEE_BPS / 10_000;
        assertEq(token.balanceOf(last), price - fee);
        assertEq(token.balanceOf(poster) - posterBefore, AMOUNT - price);
        assertEq(token.balanceOf(address(escrow)), fee);
    }
}
