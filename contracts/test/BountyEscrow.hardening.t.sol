// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

import {BountyEscrow} from "../src/BountyEscrow.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {EscrowMockToken} from "./mocks/BountyEscrowMocks.sol";
import {BountyEscrowFixture} from "./BountyEscrow.t.sol";

/// @dev A USDC-like token: 6 decimals.
contract SixDecimalToken is ERC20("Six", "SIX") {
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @notice Issue 18 ("contract hardening before real money") regressions. Each of these failed
///         on the escrow before the fix: slashes and the stake gate in stake units (the signed
///         `Bid.bond`), the evaluator's take-over capped at the current price and closed to itself,
///         and attestations bound to the provider they judge.
contract BountyEscrowHardeningTest is BountyEscrowFixture {
    bytes4 internal constant INSUFFICIENT_STAKE = bytes4(keccak256("InsufficientStake()"));
    bytes4 internal constant BID_TOO_HIGH = bytes4(keccak256("BidTooHigh()"));
    bytes4 internal constant INVALID_SIGNATURE = bytes4(keccak256("InvalidSignature()"));

    EscrowMockToken internal junk;
    SixDecimalToken internal usdc;
    address internal runnerUp;
    uint256 internal runnerUpKey;

    function setUp() public override {
        super.setUp();
        (runnerUp, runnerUpKey) = makeAddrAndKey("runnerUp");
        junk = new EscrowMockToken();
        usdc = new SixDecimalToken();
        junk.mint(poster, type(uint128).max);
        usdc.mint(poster, 10_000_000e6);
        vm.startPrank(poster);
        junk.approve(address(escrow), type(uint256).max);
        usdc.approve(address(escrow), type(uint256).max);
        vm.stopPrank();
    }

    function _setMinBond(uint256 x) internal {
        vm.prank(owner);
        escrow.setStakeGate(x);
    }

    function _bonded(uint256 id, IBountyTypes.Bounty memory b, address who, uint256 price, uint256 bond)
        internal
        view
        returns (IBountyTypes.Bid memory bid)
    {
        bid = _bid(id, b, who, price, 77);
        bid.bond = bond;
    }

    function _awardBonded(IBountyTypes.Bounty memory b, uint128 price, uint256 bond)
        internal
        returns (uint256 id)
    {
        id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bonded(id, b, provider, price, bond);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        b.provider = provider;
        b.price = price;
    }

    /// A bounty awarded to `provider` at 400 with a 1 h ETA, two hours later (overdue): its id
    /// and its record as posted and as awarded.
    function _overdueAward()
        internal
        returns (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded)
    {
        posted = _terms(address(token), uint128(AMOUNT));
        id = _postAndFund(posted);
        IBountyTypes.Bid memory bid = _bid(id, posted, provider, 400e18, 1);
        bid.eta = 1 hours;
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, posted, bid, sig);
        awarded = abi.decode(abi.encode(posted), (IBountyTypes.Bounty));
        awarded.provider = provider;
        awarded.price = 400e18;
        vm.warp(block.timestamp + 2 hours);
    }

    function _disputedAndRuled(IBountyTypes.Bounty memory b, uint256 id, uint16 bps) internal {
        bytes32 r = keccak256("result");
        vm.prank(b.provider);
        escrow.submit(id, b, r);
        b.resultHash = r;
        vm.prank(poster);
        escrow.dispute{value: BOND}(id, b);
        vm.prank(arbiter);
        escrow.resolve(id, b, bps);
    }

    function _attFor(uint256 key, uint256 id, address prov, bytes32 r, uint8 verdict)
        internal
        view
        returns (bytes memory)
    {
        return _signAttFor(key, id, prov, r, verdict);
    }

    // F1
    function test_Resolve_WorthlessTokenHugePrice_SlashesOnlyTheSignedBond() public {
        registry.setStake(provider, 10 ether);
        IBountyTypes.Bounty memory b = _terms(address(junk), 1e30);
        uint256 id = _awardBonded(b, 1e30, 0.2 ether);
        _disputedAndRuled(b, id, 0);
        assertEq(registry.totalSlashed(), 0.2 ether * uint256(SLASH_BPS) / 10_000);
        assertEq(registry.stakeOf(provider), 10 ether - 0.1 ether);
    }

    function test_Resolve_UnbondedBid_IsNeverSlashed() public {
        registry.setStake(provider, 10 ether);
        IBountyTypes.Bounty memory b = _terms(address(junk), 1e30);
        uint256 id = _awardBonded(b, 1e30, 0);
        _disputedAndRuled(b, id, 0);
        assertEq(registry.slashCalls(), 0);
        assertEq(registry.stakeOf(provider), 10 ether);
    }

    function test_Resolve_SixDecimalToken_SlashesTheSignedBondNotDust() public {
        registry.setStake(provider, 5 ether);
        IBountyTypes.Bounty memory b = _terms(address(usdc), 1_000_000e6);
        uint256 id = _awardBonded(b, 1_000_000e6, 1 ether);
        _disputedAndRuled(b, id, 0);
        assertEq(registry.totalSlashed(), 0.5 ether);
    }

    function test_RevertWhen_SixDecimalAwardToUnstakedBidderUnderGate() public {
        _setMinBond(1 ether);
        IBountyTypes.Bounty memory b = _terms(address(usdc), 1_000_000e6);
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bonded(id, b, provider, 1_000_000e6, 1 ether);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        vm.expectRevert(INSUFFICIENT_STAKE);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_SixDecimalContestEntryUnstakedUnderGate() public {
        _setMinBond(1 ether);
        IBountyTypes.Bounty memory b = _contestTerms(address(usdc), 1_000_000e6, 1);
        uint256 id = _postAndFund(b);
        vm.prank(stranger);
        vm.expectRevert(INSUFFICIENT_STAKE);
        escrow.submitEntry(id, b, keccak256("entry"));
    }

    function test_RevertWhen_WorthlessTokenHugeAwardWithoutBondUnderGate() public {
        // A huge nominal price no longer trips (or escapes) the gate: only the bond counts.
        _setMinBond(1 ether);
        registry.setStake(provider, 10 ether);
        IBountyTypes.Bounty memory b = _terms(address(junk), 1e30);
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bonded(id, b, provider, 1e30, 0);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        vm.expectRevert(BountyEscrow.BondTooLow.selector);
        escrow.award(id, b, bid, sig);
    }

    function test_SixDecimalAward_BondedAndStaked_PassesTheGate() public {
        _setMinBond(1 ether);
        registry.setStake(provider, 1 ether);
        IBountyTypes.Bounty memory b = _terms(address(usdc), 1_000_000e6);
        uint256 id = _awardBonded(b, 1_000_000e6, 1 ether);
        assertEq(escrow.bondOf(id), 1 ether);
    }

    function test_Resolve_ProviderWins_BondIsNotSlashed() public {
        registry.setStake(provider, 5 ether);
        IBountyTypes.Bounty memory b = _terms(address(usdc), 1_000_000e6);
        uint256 id = _awardBonded(b, 1_000_000e6, 1 ether);
        _disputedAndRuled(b, id, 5_000);
        assertEq(registry.slashCalls(), 0);
        assertEq(escrow.bondOf(id), 0);
    }

    function test_Reassign_TheNewBidsBondReplacesTheOld() public {
        registry.setStake(provider, 5 ether);
        IBountyTypes.Bounty memory posted = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(posted);
        IBountyTypes.Bid memory bid = _bonded(id, posted, provider, 400e18, 2 ether);
        bid.eta = 1 hours;
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, posted, bid, sig);
        assertEq(escrow.bondOf(id), 2 ether);
        IBountyTypes.Bounty memory awarded = abi.decode(abi.encode(posted), (IBountyTypes.Bounty));
        awarded.provider = provider;
        awarded.price = 400e18;
        vm.warp(block.timestamp + 2 hours);
        IBountyTypes.Bid memory next = _bonded(id, posted, runnerUp, 400e18, 0);
        bytes memory nsig = _signBid(runnerUpKey, next);
        vm.prank(poster);
        escrow.reassign(id, awarded, next, nsig);
        assertEq(escrow.bondOf(id), 0, "the late provider's bond is not the replacement's");
        awarded.provider = runnerUp;
        registry.setStake(runnerUp, 5 ether);
        _disputedAndRuled(awarded, id, 0);
        assertEq(registry.slashCalls(), 0);
    }

    // F3
    function test_RevertWhen_EvaluatorReassignsAboveTheCurrentPrice() public {
        (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded) = _overdueAward();
        IBountyTypes.Bid memory next = _bid(id, posted, runnerUp, 401e18, 2);
        bytes memory nsig = _signBid(runnerUpKey, next);
        vm.prank(evaluator);
        vm.expectRevert(BID_TOO_HIGH);
        escrow.reassign(id, awarded, next, nsig);
    }

    function test_RevertWhen_ReassignToTheEvaluator() public {
        (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded) = _overdueAward();
        IBountyTypes.Bid memory next = _bid(id, posted, evaluator, 100e18, 2);
        bytes memory nsig = _signBid(evaluatorKey, next);
        vm.prank(evaluator);
        vm.expectRevert(BountyEscrow.BidderIsEvaluator.selector);
        escrow.reassign(id, awarded, next, nsig);
    }

    function test_Reassign_EvaluatorAtOrBelowTheCurrentPrice() public {
        (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded) = _overdueAward();
        IBountyTypes.Bid memory next = _bid(id, posted, runnerUp, 400e18, 2);
        bytes memory nsig = _signBid(runnerUpKey, next);
        vm.prank(evaluator);
        escrow.reassign(id, awarded, next, nsig);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));
    }

    function test_Reassign_PosterMayStillPayUpToTheBudget() public {
        (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded) = _overdueAward();
        IBountyTypes.Bid memory next = _bid(id, posted, runnerUp, AMOUNT, 2);
        bytes memory nsig = _signBid(runnerUpKey, next);
        vm.prank(poster);
        escrow.reassign(id, awarded, next, nsig);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));
    }

    // F4
    function test_RevertWhen_ReplacementReplaysTheLateProvidersAttestation() public {
        (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded) = _overdueAward();
        bytes32 r = keccak256("late result");
        bytes memory accept = _attFor(evaluatorKey, id, provider, r, 1);
        IBountyTypes.Bid memory next = _bid(id, posted, runnerUp, 400e18, 2);
        bytes memory nsig = _signBid(runnerUpKey, next);
        vm.prank(poster);
        escrow.reassign(id, awarded, next, nsig);
        awarded.provider = runnerUp;
        vm.prank(runnerUp);
        vm.expectRevert(INVALID_SIGNATURE);
        escrow.submitAndAttest(id, awarded, r, 1, accept);
    }

    function test_ReplacementWithItsOwnAttestationIsPaid() public {
        (uint256 id, IBountyTypes.Bounty memory posted, IBountyTypes.Bounty memory awarded) = _overdueAward();
        IBountyTypes.Bid memory next = _bid(id, posted, runnerUp, 400e18, 2);
        bytes memory nsig = _signBid(runnerUpKey, next);
        vm.prank(poster);
        escrow.reassign(id, awarded, next, nsig);
        awarded.provider = runnerUp;
        bytes32 r = keccak256("runner-up result");
        bytes memory accept = _attFor(evaluatorKey, id, runnerUp, r, 1);
        uint256 before = token.balanceOf(runnerUp);
        vm.prank(runnerUp);
        escrow.submitAndAttest(id, awarded, r, 1, accept);
        assertEq(token.balanceOf(runnerUp) - before, 400e18 - uint256(400e18) * FEE_BPS / 10_000);
    }
}
