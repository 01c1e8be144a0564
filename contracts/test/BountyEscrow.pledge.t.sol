// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {BountyEscrow} from "../src/BountyEscrow.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {PullLedger} from "../src/utils/PullLedger.sol";
import {BountyEscrowFixture} from "./BountyEscrow.t.sol";

/// @notice Sub-bounties funded from the provider's pending reward (`postFromReward`): their
///         payouts are pledge-token credits, backed by the parent's settlement and redeemed for
///         the parent's token, or void when the parent does not pay its provider.
contract BountyEscrowPledgeTest is BountyEscrowFixture {
    uint128 internal constant PRICE = 800e18; // parent price; net to the provider 780e18 at 2.5 %
    uint128 internal constant SUB = 300e18; // sub-bounty budget
    uint128 internal constant SUB_PRICE = 250e18; // the sub-provider's price

    address internal sub;
    uint256 internal subKey;
    address internal runnerUp;
    uint256 internal runnerUpKey;

    function setUp() public override {
        super.setUp();
        (sub, subKey) = makeAddrAndKey("sub");
        (runnerUp, runnerUpKey) = makeAddrAndKey("runnerUp");
        _fundActor(sub);
        _fundActor(runnerUp);
    }

    // ---------------------------------------------------------------- helpers

    function _copy(IBountyTypes.Bounty memory b) internal pure returns (IBountyTypes.Bounty memory) {
        return abi.decode(abi.encode(b), (IBountyTypes.Bounty));
    }

    /// @dev An awarded parent (token reward, `PRICE` to `provider`, bid `eta`); returns the id,
    ///      the record as posted and as awarded.
    function _parent(address arbiter_, uint32 eta)
        internal
        returns (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded)
    {
        return _parentWith(arbiter_, eta, PRICE);
    }

    /// @dev `_parent` at any `price`.
    function _parentWith(address arbiter_, uint32 eta, uint128 price)
        internal
        returns (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded)
    {
        posted = _terms(address(token), uint128(AMOUNT));
        posted.arbiter = arbiter_;
        if (arbiter_ == address(0)) posted.challengeWindow = 0;
        id = _postAndFund(posted);
        IBountyTypes.Bid memory bid = _bid(id, posted, provider, price, 1);
        bid.eta = eta;
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, posted, bid, sig);
        awarded = _copy(posted);
        awarded.provider = provider;
        awarded.price = price;
    }

    /// @dev Terms of a sub-bounty posted by `by` from its reward on `parentId`.
    function _subTerms(uint256 parentId, address by, uint128 amount)
        internal
        view
        returns (IBountyTypes.Bounty memory t)
    {
        t = _terms(escrow.pledgeTokenOf(parentId, by), amount);
        t.poster = by;
        t.arbiter = address(0);
        t.challengeWindow = 0;
        t.deadline = uint64(block.timestamp + 3 days);
    }

    function _postFromReward(
        IBountyTypes.Bounty memory t,
        uint256 parentId,
        IBountyTypes.Bounty memory parent
    ) internal returns (uint256 id) {
        vm.prank(t.poster);
        id = escrow.postFromReward(_nextSalt(), t, parentId, parent);
    }

    /// @dev Awards sub-bounty `id` to `who` at `price`, who submits and is accepted.
    function _subCompleted(uint256 id, IBountyTypes.Bounty memory t, address who, uint256 key, uint128 price)
        internal
    {
        IBountyTypes.Bid memory bid = _bid(id, t, who, price, 7);
        bytes memory sig = _signBid(key, bid);
        vm.prank(t.poster);
        escrow.award(id, t, bid, sig);
        t.provider = who;
        t.price = price;
        bytes32 r = keccak256("sub result");
        bytes memory att = _signAttFor(evaluatorKey, id, who, r, 1);
        vm.prank(who);
        escrow.submitAndAttest(id, t, r, 1, att);
        t.resultHash = r;
    }

    function _parentAccepted(uint256 id, IBountyTypes.Bounty memory awarded) internal {
        bytes32 r = keccak256("parent result");
        bytes memory att = _signAtt(evaluatorKey, id, r, 1);
        vm.prank(provider);
        escrow.submitAndAttest(id, awarded, r, 1, att);
        awarded.resultHash = r;
    }

    function _fee(uint256 x) internal pure returns (uint256) {
        return x * FEE_BPS / 10_000;
    }

    function _redeem(address who, address pt) internal returns (uint256 paid) {
        vm.prank(who);
        paid = escrow.redeemPledge(pt);
    }

    // ---------------------------------------------------------------- posting

    function test_PostFromReward_FundsTheSubBountyWithoutATransfer() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        address pt = escrow.pledgeTokenOf(pid, provider);
        assertEq(pt.code.length, 0, "a pledge token has no code");
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 escrowBefore = token.balanceOf(address(escrow));
        uint256 providerBefore = token.balanceOf(provider);

        bytes32 salt = bytes32(uint256(0xbeef));
        uint256 id = escrow.bountyIdOf(provider, salt);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyPosted(id, provider, pt, t, true);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.RewardPledged(id, pid, provider, pt, SUB);
        vm.prank(provider);
        assertEq(escrow.postFromReward(salt, t, pid, parent), id);

        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Funded));
        (uint128 pledged, uint128 backed) = escrow.pledges(pt);
        assertEq(pledged, SUB);
        assertEq(backed, 0);
        (uint256 srcParent, address srcToken, address srcProvider) = escrow.pledgeSources(pt);
        assertEq(srcParent, pid);
        assertEq(srcToken, address(token));
        assertEq(srcProvider, provider);
        assertEq(token.balanceOf(address(escrow)), escrowBefore, "nothing moved");
        assertEq(token.balanceOf(provider), providerBefore, "nothing moved");
        assertEq(uint8(_status(pid)), uint8(IBountyTypes.Status.Awarded), "parent untouched");
    }

    function test_PostFromReward_UpToTheProvidersNetPayAcrossSubBounties() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        uint256 net = PRICE - _fee(PRICE);
        _postFromReward(_subTerms(pid, provider, SUB), pid, parent);
        _postFromReward(_subTerms(pid, provider, uint128(net - SUB)), pid, parent);
        (uint128 pledged,) = escrow.pledges(escrow.pledgeTokenOf(pid, provider));
        assertEq(pledged, net);

        IBountyTypes.Bounty memory t = _subTerms(pid, provider, 1);
        vm.expectRevert(abi.encodeWithSelector(BountyEscrow.PledgeTooHigh.selector, 0));
        _postFromReward(t, pid, parent);
    }

    function test_RevertWhen_PostFromRewardExceedsTheNetPay() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        uint256 net = PRICE - _fee(PRICE);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, uint128(net + 1));
        vm.expectRevert(abi.encodeWithSelector(BountyEscrow.PledgeTooHigh.selector, net));
        _postFromReward(t, pid, parent);
    }

    function test_RevertWhen_PostFromRewardNotTheProvider() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, stranger, SUB);
        vm.expectRevert(BountyEscrow.NotProvider.selector);
        _postFromReward(t, pid, parent);
    }

    function test_RevertWhen_PostFromRewardWithTheParentsToken() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        t.token = address(token);
        vm.expectRevert(BountyEscrow.NotPledgeToken.selector);
        _postFromReward(t, pid, parent);
    }

    function test_RevertWhen_PostFromRewardOfAnotherProvidersPledge() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        t.token = escrow.pledgeTokenOf(pid, runnerUp);
        vm.expectRevert(BountyEscrow.NotPledgeToken.selector);
        _postFromReward(t, pid, parent);
    }

    function test_RevertWhen_PostFromRewardParentNotAwarded() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 pid = _postAndFund(b);
        b.provider = provider; // a record that was never awarded
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        _postFromReward(t, pid, b);

        // The parent as it stands (Funded) has no provider to pledge anything.
        b.provider = address(0);
        vm.expectRevert(BountyEscrow.NotProvider.selector);
        _postFromReward(t, pid, b);
    }

    function test_RevertWhen_PostFromRewardAfterSubmission() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        vm.prank(provider);
        escrow.submit(pid, parent, keccak256("r"));
        parent.resultHash = keccak256("r");
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Submitted)
        );
        _postFromReward(t, pid, parent);
    }

    function test_RevertWhen_PostFromRewardAfterTheParentsDeadline() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        vm.warp(parent.deadline + 1);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        _postFromReward(t, pid, parent);
    }

    function test_RevertWhen_PledgeTokenFundedWithTokens() public {
        (uint256 pid,,) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        // The escrow's balance check calls a token without code: the call reverts, without data
        // (as the high-level call did before the check was written in assembly, issue 22).
        vm.prank(provider);
        vm.expectRevert(bytes(""));
        escrow.postAndFund(_nextSalt(), t);
        assertEq(uint8(_status(escrow.bountyIdOf(provider, bytes32(saltCounter)))), 0, "not posted");
    }

    // ---------------------------------------------------------------- settlement and redemption

    function test_ParentCompleted_PaysTheSubBountyFromTheHeldBackReward() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 sid = _postFromReward(t, pid, parent);
        address pt = t.token;
        _subCompleted(sid, t, sub, subKey, SUB_PRICE);

        // The sub-bounty's payouts are credits in the pledge token.
        uint256 subFee = _fee(SUB_PRICE);
        assertEq(escrow.withdrawable(pt, sub), SUB_PRICE - subFee);
        assertEq(escrow.withdrawable(pt, provider), SUB - SUB_PRICE, "its poster's refund");
        assertEq(escrow.accruedFees(pt), subFee);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.PledgePending.selector, IBountyTypes.Status.Awarded)
        );
        _redeem(sub, pt);

        uint256 providerBefore = token.balanceOf(provider);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.PledgeBacked(pt, pid, SUB);
        _parentAccepted(pid, parent);
        uint256 net = PRICE - _fee(PRICE);
        assertEq(token.balanceOf(provider) - providerBefore, net - SUB, "pledge held back");
        (, uint128 backed) = escrow.pledges(pt);
        assertEq(backed, SUB);

        uint256 subBefore = token.balanceOf(sub);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.PledgeRedeemed(pt, sub, SUB_PRICE - subFee, SUB_PRICE - subFee);
        assertEq(_redeem(sub, pt), SUB_PRICE - subFee);
        assertEq(token.balanceOf(sub) - subBefore, SUB_PRICE - subFee);
        assertEq(_redeem(provider, pt), SUB - SUB_PRICE);
        escrow.collectFees(pt); // a pledge token is credited, not pushed
        assertEq(_redeem(feeTo, pt), subFee);
        assertEq(escrow.withdrawable(pt, sub), 0);

        // All that is left in the escrow is the platform's fee on the parent.
        assertEq(token.balanceOf(address(escrow)), escrow.accruedFees(address(token)));
        assertEq(escrow.accruedFees(address(token)), _fee(PRICE));

        vm.expectRevert(PullLedger.NothingToWithdraw.selector);
        _redeem(sub, pt);
    }

    function test_ParentRefunded_LeavesTheCreditsVoid() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(address(0), 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 sid = _postFromReward(t, pid, parent);
        _subCompleted(sid, t, sub, subKey, SUB_PRICE);

        uint256 posterBefore = token.balanceOf(poster);
        bytes32 r = keccak256("bad parent result");
        bytes memory att = _signAtt(evaluatorKey, pid, r, 2);
        vm.prank(provider);
        escrow.submitAndAttest(pid, parent, r, 2, att);
        assertEq(uint8(_status(pid)), uint8(IBountyTypes.Status.Refunded));
        assertEq(token.balanceOf(poster) - posterBefore, AMOUNT, "the poster gets everything back");

        vm.expectRevert(BountyEscrow.PledgeVoid.selector);
        _redeem(sub, t.token);
        assertEq(token.balanceOf(address(escrow)), 0, "nothing owed in the real token");
    }

    /// @dev A parent whose provider pledged `SUB` (the sub-bounty completed) and then missed its
    ///      due time: the job goes to `runnerUp`, whose bid promises `eta`.
    function _pledgedThenTakenOver(uint32 eta)
        internal
        returns (
            uint256 pid,
            IBountyTypes.Bounty memory posted,
            IBountyTypes.Bounty memory parent,
            address pt
        )
    {
        (pid, posted, parent) = _parent(arbiter, 1 hours);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 sid = _postFromReward(t, pid, parent);
        _subCompleted(sid, t, sub, subKey, SUB_PRICE);
        pt = t.token;
        vm.warp(block.timestamp + 2 hours);
        IBountyTypes.Bid memory bid = _bid(pid, posted, runnerUp, PRICE, 2);
        bid.eta = eta;
        bytes memory sig = _signBid(runnerUpKey, bid);
        vm.prank(poster);
        escrow.reassign(pid, parent, bid, sig);
        parent.provider = runnerUp;
    }

    function test_ParentTakenOver_VoidsTheLateProvidersPledge() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent, address pt) = _pledgedThenTakenOver(0);
        uint256 before = token.balanceOf(runnerUp);
        bytes32 r = keccak256("runner-up result");
        bytes memory att = _signAttFor(evaluatorKey, pid, runnerUp, r, 1);
        vm.prank(runnerUp);
        escrow.submitAndAttest(pid, parent, r, 1, att);
        assertEq(token.balanceOf(runnerUp) - before, PRICE - _fee(PRICE), "the new provider is paid in full");

        vm.expectRevert(BountyEscrow.PledgeVoid.selector);
        _redeem(sub, pt);
    }

    function test_PledgeFlag_FollowsTheParentsRecordToItsSettlement() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        assertEq((escrow.recordOf(pid) >> 48) & 1, 0, "no pledge yet");
        _postFromReward(_subTerms(pid, provider, SUB), pid, parent);
        assertEq((escrow.recordOf(pid) >> 48) & 1, 1, "flagged by the pledge");
        assertEq(
            uint8(escrow.verifyRecord(pid, parent)), uint8(IBountyTypes.Status.Awarded), "record still valid"
        );
        bytes32 r = keccak256("parent result");
        vm.prank(provider);
        escrow.submit(pid, parent, r);
        parent.resultHash = r;
        assertEq((escrow.recordOf(pid) >> 48) & 1, 1, "kept by the submission");
        vm.prank(poster);
        escrow.dispute{value: BOND}(pid, parent);
        assertEq((escrow.recordOf(pid) >> 48) & 1, 1, "kept by the dispute");
        vm.prank(arbiter);
        escrow.resolve(pid, parent, 10_000);
        (, uint128 backed) = escrow.pledges(escrow.pledgeTokenOf(pid, provider));
        assertEq(backed, SUB, "the ruling found the pledge");
    }

    function test_ParentTakenOverAndBack_ThePledgeCountsAgain() public {
        // provider → runnerUp (late as well) → provider again.
        (uint256 pid, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory parent, address pt) =
            _pledgedThenTakenOver(1 hours);
        assertEq((escrow.recordOf(pid) >> 48) & 1, 0, "the new provider pledged nothing");
        vm.warp(block.timestamp + 2 hours);
        IBountyTypes.Bid memory bid = _bid(pid, posted, provider, PRICE, 3);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.reassign(pid, parent, bid, sig);
        parent.provider = provider;
        assertEq((escrow.recordOf(pid) >> 48) & 1, 1, "its earlier pledge is in force again");

        _parentAccepted(pid, parent);
        assertEq(_redeem(sub, pt), SUB_PRICE - _fee(SUB_PRICE));
    }

    /// @dev Issue 18: the provider pledged at `PRICE`, lost the job and got it back at a lower
    ///      price whose net pay is below what it already pledged. A further pledge must report
    ///      `PledgeTooHigh(0)`, not underflow into a panic; the earlier pledge stays in force and
    ///      is backed only up to the new net pay at settlement.
    function test_PledgeAfterTakeOverBackAtALowerPrice_ReportsNothingAvailable() public {
        (uint256 pid, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory parent, address pt) =
            _pledgedThenTakenOver(1 hours);
        vm.warp(block.timestamp + 2 hours);
        uint128 lower = 200e18; // net 195e18 < SUB (300e18) already pledged
        IBountyTypes.Bid memory bid = _bid(pid, posted, provider, lower, 3);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.reassign(pid, parent, bid, sig);
        parent.provider = provider;
        parent.price = lower;

        IBountyTypes.Bounty memory t = _subTerms(pid, provider, 1e18);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(BountyEscrow.PledgeTooHigh.selector, 0));
        escrow.postFromReward(_nextSalt(), t, pid, parent);

        // The earlier pledge is backed by the whole (smaller) net pay: credits redeem pro rata.
        _parentAccepted(pid, parent);
        (uint128 pledged, uint128 backed) = escrow.pledges(pt);
        assertEq(pledged, SUB);
        assertEq(backed, lower - _fee(lower));
        assertEq(_redeem(sub, pt), uint256(SUB_PRICE - _fee(SUB_PRICE)) * backed / pledged);
    }

    function test_ParentRevoked_VoidsThePledge() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 1 hours);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 sid = _postFromReward(t, pid, parent);
        _subCompleted(sid, t, sub, subKey, SUB_PRICE);
        vm.warp(block.timestamp + 2 hours);
        vm.prank(poster);
        escrow.revokeAward(pid, parent);
        vm.expectRevert(BountyEscrow.PledgeVoid.selector);
        _redeem(sub, t.token);
    }

    /// @dev A parent whose provider pledged `SUB` (the sub-bounty completed at `SUB_PRICE`),
    ///      then submitted, was disputed by the poster and ruled `providerBps`. Returns the
    ///      pledge token and how much the provider itself received.
    function _pledgedThenRuled(uint16 providerBps) internal returns (address pt, uint256 toProvider) {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 sid = _postFromReward(t, pid, parent);
        _subCompleted(sid, t, sub, subKey, SUB_PRICE);
        bytes32 r = keccak256("parent result");
        vm.prank(provider);
        escrow.submit(pid, parent, r);
        parent.resultHash = r;
        vm.prank(poster);
        escrow.dispute{value: BOND}(pid, parent);
        uint256 providerBefore = token.balanceOf(provider);
        vm.prank(arbiter);
        escrow.resolve(pid, parent, providerBps);
        return (t.token, token.balanceOf(provider) - providerBefore);
    }

    function test_ParentSplitRuling_BacksThePledgeProRata() public {
        (address pt, uint256 toProvider) = _pledgedThenRuled(2_000);
        uint256 gross = uint256(PRICE) * 2_000 / 10_000;
        uint256 net = gross - _fee(gross); // 156e18 < SUB: all of it backs the pledge
        assertEq(toProvider, 0, "the provider's share went to the pledge");
        (uint128 pledged, uint128 backed) = escrow.pledges(pt);
        assertEq(backed, net);
        uint256 credit = SUB_PRICE - _fee(SUB_PRICE);
        assertEq(_redeem(sub, pt), credit * net / pledged);
    }

    function test_ParentSplitRuling_CoveringThePledgePaysInFull() public {
        (address pt, uint256 toProvider) = _pledgedThenRuled(7_500);
        uint256 gross = uint256(PRICE) * 7_500 / 10_000;
        assertEq(toProvider, gross - _fee(gross) - SUB);
        assertEq(_redeem(sub, pt), SUB_PRICE - _fee(SUB_PRICE));
    }

    function test_NestedPledge_RedeemsThroughBothLevels() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 sid = _postFromReward(t, pid, parent);
        // `sub` wins the sub-bounty and funds a sub-sub-bounty from that (pledged) reward.
        IBountyTypes.Bid memory bid = _bid(sid, t, sub, SUB_PRICE, 7);
        bytes memory sig = _signBid(subKey, bid);
        vm.prank(provider);
        escrow.award(sid, t, bid, sig);
        t.provider = sub;
        t.price = SUB_PRICE;

        IBountyTypes.Bounty memory g = _subTerms(sid, sub, 100e18);
        uint256 gid = _postFromReward(g, sid, t);
        _subCompleted(gid, g, runnerUp, runnerUpKey, 100e18);

        bytes32 r = keccak256("sub result");
        bytes memory att = _signAttFor(evaluatorKey, sid, sub, r, 1);
        vm.prank(sub);
        escrow.submitAndAttest(sid, t, r, 1, att);
        _parentAccepted(pid, parent);

        // The grandchild's credit redeems into a credit on the child's pledge, then into tokens.
        uint256 credit = 100e18 - _fee(100e18);
        assertEq(_redeem(runnerUp, g.token), credit);
        assertEq(escrow.withdrawable(t.token, runnerUp), credit);
        uint256 before = token.balanceOf(runnerUp);
        assertEq(_redeem(runnerUp, t.token), credit);
        assertEq(token.balanceOf(runnerUp) - before, credit);
        // What `sub` kept of its own (pledged) pay: its net less what it pledged onwards.
        assertEq(escrow.withdrawable(t.token, sub), SUB_PRICE - _fee(SUB_PRICE) - 100e18);
    }

    function test_RevertWhen_RedeemUnknownToken() public {
        vm.expectRevert(BountyEscrow.NotPledgeToken.selector);
        _redeem(sub, address(token));
    }

    function test_RevertWhen_WithdrawPledgeCredits() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 sid = _postFromReward(t, pid, parent);
        _subCompleted(sid, t, sub, subKey, SUB_PRICE);
        vm.prank(sub);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, t.token));
        escrow.withdraw(t.token);
        assertEq(escrow.withdrawable(t.token, sub), SUB_PRICE - _fee(SUB_PRICE), "credit kept");
    }

    function test_SubBountyCancelled_RefundsItsPosterInCredits() public {
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parent(arbiter, 0);
        IBountyTypes.Bounty memory t = _subTerms(pid, provider, SUB);
        uint256 sid = _postFromReward(t, pid, parent);
        vm.prank(provider);
        escrow.cancel(sid, t);
        assertEq(escrow.withdrawable(t.token, provider), SUB);
        uint256 before = token.balanceOf(provider);
        _parentAccepted(pid, parent);
        assertEq(_redeem(provider, t.token), SUB);
        assertEq(token.balanceOf(provider) - before, PRICE - _fee(PRICE), "its whole net pay in the end");
    }

    // ---------------------------------------------------------------- fuzz

    /// @dev Whatever the price and the pledges, the provider's pay plus what the pledge can redeem
    ///      is exactly the provider's net pay, and the escrow keeps only the fee.
    function testFuzz_PledgeNeverCostsThePosterMore(uint128 price, uint128 a, uint128 b) public {
        price = uint128(bound(price, 1e6, AMOUNT));
        (uint256 pid,, IBountyTypes.Bounty memory parent) = _parentWith(arbiter, 0, price);
        uint256 net = price - _fee(price);
        a = uint128(bound(a, 1, net));
        b = uint128(bound(b, 1, type(uint128).max - a));
        bool fits = uint256(a) + b <= net;
        address pt = _pledgeTwiceCancelFirst(pid, parent, a, b, fits ? 0 : net - a);

        uint256 posterBefore = token.balanceOf(poster);
        uint256 providerBefore = token.balanceOf(provider);
        _parentAccepted(pid, parent);
        assertEq(_redeem(provider, pt), a, "the cancelled sub-bounty's budget comes back");
        assertEq(token.balanceOf(provider) - providerBefore, net - (fits ? b : 0));
        assertEq(token.balanceOf(poster) - posterBefore, AMOUNT - price);
    }

    /// @dev Pledges `a`, then `b` (expected to fail with `PledgeTooHigh(available)` unless
    ///      `available` is 0), then cancels the first sub-bounty; returns the pledge token.
    function _pledgeTwiceCancelFirst(
        uint256 pid,
        IBountyTypes.Bounty memory parent,
        uint128 a,
        uint128 b,
        uint256 available
    ) internal returns (address) {
        IBountyTypes.Bounty memory t1 = _subTerms(pid, provider, a);
        uint256 s1 = _postFromReward(t1, pid, parent);
        IBountyTypes.Bounty memory t2 = _subTerms(pid, provider, b);
        if (available != 0 || uint256(a) + b > parent.price - _fee(parent.price)) {
            vm.expectRevert(abi.encodeWithSelector(BountyEscrow.PledgeTooHigh.selector, available));
        }
        _postFromReward(t2, pid, parent);
        vm.prank(provider);
        escrow.cancel(s1, t1);
        return t1.token;
    }
}
