// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {AgentRegistry} from "../src/AgentRegistry.sol";
import {BountyEscrow} from "../src/BountyEscrow.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {IStakeRegistry} from "../src/interfaces/IStakeRegistry.sol";
import {
    EscrowActor,
    EscrowBlacklistToken,
    EscrowFeeOnTransferToken,
    EscrowMockStakeRegistry,
    EscrowMockToken,
    EscrowMockWallet
} from "./mocks/BountyEscrowMocks.sol";
import {PullLedger} from "../src/utils/PullLedger.sol";
import {EthRejecter} from "./mocks/EthRejecter.sol";

/// @notice Shared fixture: actors, deployment and signing helpers.
abstract contract BountyEscrowFixture is Test {
    uint16 internal constant FEE_BPS = 250;
    uint256 internal constant BOND = 0.01 ether;
    uint16 internal constant SLASH_BPS = 5_000;
    uint256 internal constant AMOUNT = 1_000e18;

    BountyEscrow internal escrow;
    EscrowMockToken internal token;
    EscrowMockStakeRegistry internal registry;

    address internal owner = makeAddr("owner");
    address internal feeTo = makeAddr("feeTo");
    address internal arbiter = makeAddr("arbiter");
    address internal stranger = makeAddr("stranger");

    address internal poster;
    uint256 internal posterKey;
    address internal provider;
    uint256 internal providerKey;
    address internal evaluator;
    uint256 internal evaluatorKey;

    uint256 internal saltCounter;
    /// @dev Stake (registry wei) the next `_award` bid bonds.
    uint256 internal nextBond;

    function setUp() public virtual {
        (poster, posterKey) = makeAddrAndKey("poster");
        (provider, providerKey) = makeAddrAndKey("provider");
        (evaluator, evaluatorKey) = makeAddrAndKey("evaluator");
        vm.warp(1_700_000_000);

        token = new EscrowMockToken();
        registry = new EscrowMockStakeRegistry();
        escrow = new BountyEscrow(owner, feeTo, FEE_BPS, IStakeRegistry(address(registry)), BOND, SLASH_BPS);

        _fundActor(poster);
        _fundActor(provider);
        _fundActor(stranger);
    }

    function _fundActor(address a) internal {
        vm.deal(a, 10_000 ether);
        token.mint(a, 1_000_000e18);
        vm.prank(a);
        token.approve(address(escrow), type(uint256).max);
    }

    // ---------------------------------------------------------------- terms

    function _terms(address tkn, uint128 amount) internal view returns (IBountyTypes.Bounty memory b) {
        b.poster = poster;
        b.token = tkn;
        b.amount = amount;
        b.evaluator = evaluator;
        b.arbiter = arbiter;
        b.deadline = uint64(block.timestamp + 7 days);
        b.reviewWindow = 1 days;
        b.challengeWindow = 2 days;
        b.feeBps = escrow.feeBps();
        b.mode = IBountyTypes.Mode.Auction;
        b.specHash = keccak256("spec");
    }

    function _contestTerms(address tkn, uint128 amount, uint8 maxWinners)
        internal
        view
        returns (IBountyTypes.Bounty memory b)
    {
        b = _terms(tkn, amount);
        b.mode = IBountyTypes.Mode.Contest;
        b.maxWinners = maxWinners;
    }

    function _nextSalt() internal returns (bytes32) {
        return bytes32(++saltCounter);
    }

    function _postAndFund(IBountyTypes.Bounty memory b) internal returns (uint256 id) {
        uint256 value = b.token == address(0) ? b.amount : 0;
        vm.prank(b.poster);
        id = escrow.postAndFund{value: value}(_nextSalt(), b);
    }

    // ---------------------------------------------------------------- signatures

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev Bid for bounty `id` committing to the record `b` as posted (`termsHash = hashBounty(b)`).
    function _bid(uint256 id, IBountyTypes.Bounty memory b, address bidder, uint256 price, uint256 nonce)
        internal
        view
        returns (IBountyTypes.Bid memory bid)
    {
        bid = IBountyTypes.Bid({
            bountyId: id,
            termsHash: keccak256(abi.encode(b)),
            bidder: bidder,
            amount: price,
            deadline: uint64(block.timestamp + 1 days),
            eta: 0,
            bond: 0,
            nonce: nonce
        });
    }

    function _signBid(uint256 key, IBountyTypes.Bid memory bid) internal view returns (bytes memory) {
        return _sign(key, escrow.hashBid(bid));
    }

    /// @dev Attestation for the fixture's `provider`.
    function _signAtt(uint256 key, uint256 id, bytes32 resultHash, uint8 verdict)
        internal
        view
        returns (bytes memory)
    {
        return _signAttFor(key, id, provider, resultHash, verdict);
    }

    function _signAttFor(uint256 key, uint256 id, address prov, bytes32 resultHash, uint8 verdict)
        internal
        view
        returns (bytes memory)
    {
        return _sign(
            key,
            escrow.hashAttestation(
                IBountyTypes.Attestation({
                    bountyId: id, provider: prov, resultHash: resultHash, verdict: verdict
                })
            )
        );
    }

    // ---------------------------------------------------------------- lifecycle shortcuts

    /// @dev Posts+funds `b` and awards it to `provider` at `price`; returns the id and updates `b`.
    function _award(IBountyTypes.Bounty memory b, uint128 price) internal returns (uint256 id) {
        id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, price, uint256(keccak256(abi.encode(id))));
        bid.bond = nextBond;
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(b.poster);
        escrow.award(id, b, bid, sig);
        b.provider = provider;
        b.price = price;
    }

    /// @dev Awards and submits; updates `b.resultHash`.
    function _submitted(IBountyTypes.Bounty memory b, uint128 price) internal returns (uint256 id) {
        id = _award(b, price);
        bytes32 r = keccak256("result");
        vm.prank(provider);
        escrow.submit(id, b, r);
        b.resultHash = r;
    }

    /// @dev Submitted then rejected by the evaluator (challenge window pending if arbiter set).
    function _rejected(IBountyTypes.Bounty memory b, uint128 price) internal returns (uint256 id) {
        id = _submitted(b, price);
        vm.prank(evaluator);
        escrow.attest(id, b, 2, "");
    }

    function _status(uint256 id) internal view returns (IBountyTypes.Status s) {
        (s,) = escrow.statusOf(id);
    }

    function _bal(address tkn, address a) internal view returns (uint256) {
        return tkn == address(0) ? a.balance : token.balanceOf(a);
    }
}

contract BountyEscrowTest is BountyEscrowFixture {
    // =====================================================================================
    // Construction and admin
    // =====================================================================================

    function test_Constructor_SetsParameters() public view {
        assertEq(escrow.owner(), owner);
        assertEq(escrow.feeRecipient(), feeTo);
        assertEq(escrow.feeBps(), FEE_BPS);
        assertEq(address(escrow.stakeRegistry()), address(registry));
        assertEq(escrow.disputeBond(), BOND);
        assertEq(escrow.slashBps(), SLASH_BPS);
        assertEq(escrow.minBond(), 0);
    }

    function test_RevertWhen_ConstructorFeeTooHigh() public {
        vm.expectRevert(BountyEscrow.FeeTooHigh.selector);
        new BountyEscrow(owner, feeTo, 1_001, IStakeRegistry(address(0)), BOND, SLASH_BPS);
    }

    function test_RevertWhen_ConstructorFeeRecipientZero() public {
        vm.expectRevert(PullLedger.ZeroAddress.selector);
        new BountyEscrow(owner, address(0), FEE_BPS, IStakeRegistry(address(0)), BOND, SLASH_BPS);
    }

    function test_RevertWhen_ConstructorSlashBpsTooHigh() public {
        vm.expectRevert(BountyEscrow.InvalidBps.selector);
        new BountyEscrow(owner, feeTo, FEE_BPS, IStakeRegistry(address(0)), BOND, 10_001);
    }

    function test_SetFee() public {
        vm.expectEmit(address(escrow));
        emit BountyEscrow.FeeUpdated(1_000, stranger);
        vm.prank(owner);
        escrow.setFee(1_000, stranger);
        assertEq(escrow.feeBps(), 1_000);
        assertEq(escrow.feeRecipient(), stranger);
    }

    function test_RevertWhen_SetFeeNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        escrow.setFee(100, stranger);
    }

    function test_RevertWhen_SetFeeTooHigh() public {
        vm.expectRevert(BountyEscrow.FeeTooHigh.selector);
        vm.prank(owner);
        escrow.setFee(1_001, feeTo);
    }

    function test_RevertWhen_SetFeeRecipientZero() public {
        vm.expectRevert(PullLedger.ZeroAddress.selector);
        vm.prank(owner);
        escrow.setFee(100, address(0));
    }

    function test_SetStakeGate() public {
        vm.expectEmit(address(escrow));
        emit BountyEscrow.StakeGateUpdated(5 ether);
        vm.prank(owner);
        escrow.setStakeGate(5 ether);
        assertEq(escrow.minBond(), 5 ether);
        vm.prank(owner);
        escrow.setStakeGate(0);
        assertEq(escrow.minBond(), 0);
    }

    function test_RevertWhen_SetStakeGateAbove80Bits() public {
        vm.expectRevert(BountyEscrow.InvalidBond.selector);
        vm.prank(owner);
        escrow.setStakeGate(uint256(type(uint80).max) + 1);
    }

    function test_RevertWhen_SetStakeGateWithoutRegistry() public {
        BountyEscrow noReg = new BountyEscrow(owner, feeTo, FEE_BPS, IStakeRegistry(address(0)), 0, SLASH_BPS);
        vm.expectRevert(PullLedger.ZeroAddress.selector);
        vm.prank(owner);
        noReg.setStakeGate(1);
    }

    function test_RevertWhen_SetStakeGateNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        escrow.setStakeGate(1);
    }

    function test_TransferOwnership_IsTwoStep() public {
        vm.prank(owner);
        escrow.transferOwnership(stranger);
        assertEq(escrow.owner(), owner);
        vm.prank(stranger);
        escrow.acceptOwnership();
        assertEq(escrow.owner(), stranger);
    }

    // =====================================================================================
    // post / fund
    // =====================================================================================

    function test_Post_CreatesOpenRecord() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        bytes32 salt = keccak256("salt");
        uint256 expectedId = escrow.bountyIdOf(poster, salt);

        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyPosted(expectedId, poster, address(token), b, false);
        vm.prank(poster);
        uint256 id = escrow.post(salt, b);

        assertEq(id, expectedId);
        (IBountyTypes.Status s, uint40 stamp) = escrow.statusOf(id);
        assertEq(uint8(s), uint8(IBountyTypes.Status.Open));
        assertEq(stamp, block.timestamp);
        uint256 word = escrow.recordOf(id);
        assertEq(word >> 49, uint256(keccak256(abi.encode(b))) >> 49, "commitment");
        assertEq((word >> 48) & 1, 0, "no pledge");
        assertEq(uint8(escrow.verifyRecord(id, b)), uint8(IBountyTypes.Status.Open));
        assertEq(token.balanceOf(address(escrow)), 0);
    }

    function test_BountyIdOf_DependsOnPosterAndSalt() public view {
        bytes32 salt = keccak256("x");
        assertEq(escrow.bountyIdOf(poster, salt), uint256(keccak256(abi.encode(poster, salt))));
        assertTrue(escrow.bountyIdOf(poster, salt) != escrow.bountyIdOf(stranger, salt));
    }

    function test_RevertWhen_PostIdReused() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.startPrank(poster);
        escrow.post(bytes32("s"), b);
        vm.expectRevert(BountyEscrow.BountyExists.selector);
        escrow.post(bytes32("s"), b);
        vm.expectRevert(BountyEscrow.BountyExists.selector);
        escrow.postAndFund(bytes32("s"), b);
        vm.stopPrank();
    }

    function test_RevertWhen_PostIdReusedAfterTerminal() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.startPrank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        escrow.cancel(id, b);
        vm.expectRevert(BountyEscrow.BountyExists.selector);
        escrow.post(bytes32("s"), b);
        vm.stopPrank();
    }

    function test_RevertWhen_PostPosterIsNotSender() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.expectRevert(BountyEscrow.NotPoster.selector);
        vm.prank(stranger);
        escrow.post(bytes32("s"), b);
    }

    function test_RevertWhen_PostZeroAmount() public {
        IBountyTypes.Bounty memory b = _terms(address(token), 0);
        vm.expectRevert(BountyEscrow.ZeroAmount.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);
    }

    function test_RevertWhen_PostDeadlineNotInFuture() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.deadline = uint64(block.timestamp);
        vm.expectRevert(BountyEscrow.InvalidDeadline.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);
    }

    function test_RevertWhen_PostEvaluatorZero() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.evaluator = address(0);
        vm.expectRevert(PullLedger.ZeroAddress.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);
    }

    function test_RevertWhen_PostProviderPriceOrResultSet() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.price = 1;
        vm.expectRevert(BountyEscrow.InvalidTerms.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);

        b.price = 0;
        b.provider = provider;
        vm.expectRevert(BountyEscrow.InvalidTerms.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);

        b.provider = address(0);
        b.resultHash = bytes32("r");
        vm.expectRevert(BountyEscrow.InvalidTerms.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);
    }

    function test_RevertWhen_PostFeeMismatch() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.feeBps = 0;
        vm.expectRevert(BountyEscrow.FeeMismatch.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);
        vm.expectRevert(BountyEscrow.FeeMismatch.selector);
        vm.prank(poster);
        escrow.postAndFund(bytes32("s"), b);
    }

    function test_RevertWhen_PostAuctionWithMaxWinners() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.maxWinners = 1;
        vm.expectRevert(BountyEscrow.InvalidTerms.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);
    }

    function test_RevertWhen_PostContestWinnersOutOfRange() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 0);
        vm.expectRevert(BountyEscrow.InvalidTerms.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);

        b.maxWinners = 33;
        vm.expectRevert(BountyEscrow.InvalidTerms.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);
    }

    function test_RevertWhen_PostContestWithoutReviewWindow() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 3);
        b.reviewWindow = 0;
        vm.expectRevert(BountyEscrow.InvalidTerms.selector);
        vm.prank(poster);
        escrow.post(bytes32("s"), b);
    }

    function test_RevertWhen_PostCalldataHasDirtyBits() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        bytes memory data = abi.encodeCall(BountyEscrow.post, (bytes32("s"), b));
        // Bounty.arbiter is the 7th word of the record, after selector (4) and salt (32).
        uint256 pos = 4 + 32 + 6 * 32;
        data[pos] = 0x01;
        vm.prank(poster);
        (bool ok,) = address(escrow).call(data);
        assertFalse(ok);

        // Dirty reviewWindow (uint32) high bits.
        data = abi.encodeCall(BountyEscrow.post, (bytes32("s"), b));
        data[4 + 32 + 8 * 32] = 0x01;
        vm.prank(poster);
        (ok,) = address(escrow).call(data);
        assertFalse(ok);
    }

    /// @dev Issue 22: `BountyPosted` is logged from the calldata bytes, so the posting paths
    ///      must still refuse a record with dirty high bits in any non-bytes32 field (before,
    ///      the event's ABI encoder refused them), whichever path posts it.
    function testFuzz_RevertWhen_PostedRecordHasDirtyBits(uint8 field, uint8 path) public {
        field = uint8(bound(field, 0, 12)); // 13, 14: specHash and resultHash are bytes32
        path = uint8(bound(path, 0, 2));
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        bytes32 salt = bytes32("dirty");
        bytes memory data;
        if (path == 0) {
            data = abi.encodeCall(BountyEscrow.post, (salt, b));
        } else if (path == 1) {
            data = abi.encodeCall(BountyEscrow.postAndFund, (salt, b));
        } else {
            IBountyTypes.Bid memory bid = _bid(escrow.bountyIdOf(poster, salt), b, provider, 500e18, 1);
            data = abi.encodeCall(BountyEscrow.postFundAndAward, (salt, b, bid, _signBid(providerKey, bid)));
        }
        bytes memory clean = data;
        data = bytes.concat(data); // copy
        data[4 + 32 + uint256(field) * 32] = 0x01;
        vm.prank(poster);
        (bool ok,) = address(escrow).call(data);
        assertFalse(ok, "dirty record refused");
        vm.prank(poster);
        (ok,) = address(escrow).call(clean);
        assertTrue(ok, "clean record accepted");
    }

    function test_Fund_ETHByStranger() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);

        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyFunded(id, stranger, 1 ether);
        vm.prank(stranger);
        escrow.fund{value: 1 ether}(id, b);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Funded));
        assertEq(address(escrow).balance, 1 ether);
    }

    function test_Fund_ERC20() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        vm.prank(poster);
        escrow.fund(id, b);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Funded));
        assertEq(token.balanceOf(address(escrow)), AMOUNT);
    }

    function test_RevertWhen_FundNotOpen() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Funded)
        );
        vm.prank(poster);
        escrow.fund(id, b);
    }

    function test_RevertWhen_FundRecordMismatch() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        b.amount = 1;
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        vm.prank(poster);
        escrow.fund(id, b);
    }

    function test_RevertWhen_FundUnknownBounty() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        vm.prank(poster);
        escrow.fund(123, b);
    }

    function test_RevertWhen_FundAfterDeadline() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        vm.warp(b.deadline + 1);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        vm.prank(poster);
        escrow.fund(id, b);
    }

    function test_RevertWhen_FundETHWrongValue() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        vm.expectRevert(PullLedger.InvalidValue.selector);
        vm.prank(poster);
        escrow.fund{value: 1 ether - 1}(id, b);
    }

    function test_RevertWhen_FundERC20WithValue() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        vm.expectRevert(PullLedger.InvalidValue.selector);
        vm.prank(poster);
        escrow.fund{value: 1}(id, b);
    }

    // =====================================================================================
    // postAndFund
    // =====================================================================================

    function test_PostAndFund_ETH() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 2 ether);
        bytes32 salt = bytes32("eth");
        uint256 expectedId = escrow.bountyIdOf(poster, salt);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyPosted(expectedId, poster, address(0), b, true);
        vm.prank(poster);
        uint256 id = escrow.postAndFund{value: 2 ether}(salt, b);
        assertEq(id, expectedId);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Funded));
        assertEq(address(escrow).balance, 2 ether);
    }

    function test_PostAndFund_ERC20() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 before = token.balanceOf(poster);
        uint256 id = _postAndFund(b);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Funded));
        assertEq(token.balanceOf(address(escrow)), AMOUNT);
        assertEq(token.balanceOf(poster), before - AMOUNT);
    }

    function test_RevertWhen_PostAndFundETHWrongValue() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 2 ether);
        vm.expectRevert(PullLedger.InvalidValue.selector);
        vm.prank(poster);
        escrow.postAndFund{value: 3 ether}(bytes32("s"), b);
    }

    function test_RevertWhen_PostAndFundERC20WithValue() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.expectRevert(PullLedger.InvalidValue.selector);
        vm.prank(poster);
        escrow.postAndFund{value: 1}(bytes32("s"), b);
    }

    function test_RevertWhen_PostAndFundFeeOnTransferToken() public {
        EscrowFeeOnTransferToken fot = new EscrowFeeOnTransferToken();
        fot.mint(poster, AMOUNT);
        vm.prank(poster);
        fot.approve(address(escrow), AMOUNT);
        IBountyTypes.Bounty memory b = _terms(address(fot), uint128(AMOUNT));
        vm.expectRevert(PullLedger.FeeOnTransferToken.selector);
        vm.prank(poster);
        escrow.postAndFund(bytes32("s"), b);
    }

    function test_RevertWhen_PostAndFundAllowanceMissing() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.prank(poster);
        token.approve(address(escrow), 0);
        vm.expectRevert();
        vm.prank(poster);
        escrow.postAndFund(bytes32("s"), b);
    }

    function test_RevertWhen_PostAndFundTokenWithoutCode() public {
        IBountyTypes.Bounty memory b = _terms(makeAddr("notAToken"), uint128(AMOUNT));
        vm.expectRevert();
        vm.prank(poster);
        escrow.postAndFund(bytes32("s"), b);
    }

    // =====================================================================================
    // award
    // =====================================================================================

    function test_Award_SetsProviderAndPrice() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 600e18, 7);
        bytes memory sig = _signBid(providerKey, bid);

        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyAwarded(id, provider, 600e18, 7, b.deadline);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);

        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));
        assertTrue(escrow.isNonceUsed(provider, 7));
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        escrow.verifyRecord(id, b);
        b.provider = provider;
        b.price = 600e18;
        assertEq(uint8(escrow.verifyRecord(id, b)), uint8(IBountyTypes.Status.Awarded));
    }

    function test_Award_ERC1271Bidder() public {
        EscrowMockWallet wallet = new EscrowMockWallet(provider);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, address(wallet), 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        b.provider = address(wallet);
        b.price = 500e18;
        assertEq(uint8(escrow.verifyRecord(id, b)), uint8(IBountyTypes.Status.Awarded));
    }

    function test_RevertWhen_AwardERC1271BidderRejects() public {
        EscrowMockWallet wallet = new EscrowMockWallet(provider);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, address(wallet), 500e18, 1);
        bytes memory sig = _signBid(evaluatorKey, bid);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardNotPoster() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.NotPoster.selector);
        vm.prank(provider);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardNotFunded() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Open));
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardContest() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 2);
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.WrongMode.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardAfterDeadline() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        vm.warp(b.deadline + 1);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardBidForOtherBounty() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id + 1, b, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.BidMismatch.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardBidExpired() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.warp(bid.deadline + 1);
        vm.expectRevert(BountyEscrow.BidExpired.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardBidTooHigh() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, AMOUNT + 1, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.BidTooHigh.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardBidZero() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 0, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.ZeroAmount.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardBidReplayed() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 42);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);

        // Same nonce, for a second bounty: the first use burnt it.
        IBountyTypes.Bounty memory b2 = _terms(address(token), uint128(AMOUNT));
        uint256 id2 = _postAndFund(b2);
        IBountyTypes.Bid memory bid2 = _bid(id2, b2, provider, 500e18, 42);
        bytes memory sig2 = _signBid(providerKey, bid2);
        vm.expectRevert(BountyEscrow.NonceUsed.selector);
        vm.prank(poster);
        escrow.award(id2, b2, bid2, sig2);
    }

    function test_RevertWhen_AwardNonceInvalidated() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        uint256 nonce = (3 << 8) | 9;
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, nonce);
        bytes memory sig = _signBid(providerKey, bid);

        vm.expectEmit(address(escrow));
        emit BountyEscrow.NonceInvalidated(provider, 3, 1 << 9);
        vm.prank(provider);
        escrow.invalidateNonces(3, 1 << 9);
        assertTrue(escrow.isNonceUsed(provider, nonce));
        assertFalse(escrow.isNonceUsed(provider, nonce + 1));

        vm.expectRevert(BountyEscrow.NonceUsed.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardSignedByOtherKey() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(evaluatorKey, bid);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardTamperedBid() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        bid.amount = 900e18;
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardMalformedSignature() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, hex"1234");
    }

    function test_RevertWhen_AwardWrongChainId() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid); // signed for chain 31337
        vm.chainId(10);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardSignatureForOtherDeployment() public {
        BountyEscrow other =
            new BountyEscrow(owner, feeTo, FEE_BPS, IStakeRegistry(address(registry)), BOND, SLASH_BPS);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _sign(providerKey, other.hashBid(bid));
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardStakeBelowTheBond() public {
        vm.prank(owner);
        escrow.setStakeGate(1 ether);
        registry.setStake(provider, 1 ether - 1);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 100e18, 1);
        bid.bond = 1 ether;
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.InsufficientStake.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);

        registry.setStake(provider, 1 ether);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));
    }

    function test_RevertWhen_AwardBondBelowTheGate() public {
        vm.prank(owner);
        escrow.setStakeGate(1 ether);
        registry.setStake(provider, 10 ether);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 100e18, 1);
        bid.bond = 1 ether - 1;
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.BondTooLow.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_Award_UnbondedWithoutGateSkipsRegistry() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, AMOUNT, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectCall(address(registry), abi.encodeCall(IStakeRegistry.stakeOf, (provider)), 0);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        assertEq(escrow.bondOf(id), 0);
    }

    function test_Award_RecordsTheSignedBond() public {
        registry.setStake(provider, 2 ether);
        nextBond = 2 ether;
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 100e18);
        assertEq(escrow.bondOf(id), 2 ether);
    }

    function test_RevertWhen_AwardBondWithoutRegistry() public {
        escrow = new BountyEscrow(owner, feeTo, FEE_BPS, IStakeRegistry(address(0)), BOND, SLASH_BPS);
        _fundActor(poster);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 100e18, 1);
        bid.bond = 1;
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.InsufficientStake.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function test_RevertWhen_AwardStaleRecord() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        // Try to award again with the pre-award record.
        b.provider = address(0);
        b.price = 0;
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 400e18, 99);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    // =====================================================================================
    // postFundAndAward
    // =====================================================================================

    function test_PostFundAndAward_FullLifecycleERC20() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        bytes32 salt = bytes32("one-shot");
        uint256 id = escrow.bountyIdOf(poster, salt);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 800e18, 5);
        bytes memory sig = _signBid(providerKey, bid);

        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyPosted(id, poster, address(token), b, true);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyAwarded(id, provider, 800e18, 5, b.deadline);
        vm.prank(poster);
        assertEq(escrow.postFundAndAward(salt, b, bid, sig), id);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));

        b.provider = provider;
        b.price = 800e18;
        bytes32 r = keccak256("out");
        bytes memory att = _signAtt(evaluatorKey, id, r, 1);
        uint256 provBefore = token.balanceOf(provider);
        uint256 postBefore = token.balanceOf(poster);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, att);

        uint256 fee = 800e18 * uint256(FEE_BPS) / 10_000;
        assertEq(token.balanceOf(provider) - provBefore, 800e18 - fee);
        assertEq(token.balanceOf(poster) - postBefore, 200e18);
        assertEq(escrow.accruedFees(address(token)), fee);
        assertEq(token.balanceOf(address(escrow)), fee);
        b.resultHash = r;
        assertEq(uint8(escrow.verifyRecord(id, b)), uint8(IBountyTypes.Status.Completed));
    }

    function test_PostFundAndAward_ETH() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        bytes32 salt = bytes32("eth");
        uint256 id = escrow.bountyIdOf(poster, salt);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 1 ether, 5);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.postFundAndAward{value: 1 ether}(salt, b, bid, sig);
        assertEq(address(escrow).balance, 1 ether);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));
    }

    function test_RevertWhen_PostFundAndAwardContest() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 2);
        bytes32 salt = bytes32("c");
        uint256 id = escrow.bountyIdOf(poster, salt);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 800e18, 5);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.WrongMode.selector);
        vm.prank(poster);
        escrow.postFundAndAward(salt, b, bid, sig);
    }

    function test_RevertWhen_PostFundAndAwardBadSignature() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        bytes32 salt = bytes32("c");
        uint256 id = escrow.bountyIdOf(poster, salt);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 800e18, 5);
        bytes memory sig = _signBid(posterKey, bid);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.postFundAndAward(salt, b, bid, sig);
    }

    function test_RevertWhen_PostFundAndAwardBidForOtherId() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        IBountyTypes.Bid memory bid =
            _bid(escrow.bountyIdOf(poster, bytes32("other")), b, provider, 800e18, 5);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.BidMismatch.selector);
        vm.prank(poster);
        escrow.postFundAndAward(bytes32("c"), b, bid, sig);
    }

    // =====================================================================================
    // Bid commits to the terms (SECURITY.md L1)
    // =====================================================================================

    function test_RevertWhen_BidTermsHashMismatch() public {
        // award: the bid was signed for the same bounty id but another token.
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bounty memory otherToken = _terms(address(0), uint128(AMOUNT));
        IBountyTypes.Bid memory bid = _bid(id, otherToken, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.BidMismatch.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);

        // postFundAndAward: the bid was signed for the same id but another evaluator.
        IBountyTypes.Bounty memory t = _terms(address(token), uint128(AMOUNT));
        bytes32 salt = bytes32("terms");
        uint256 id2 = escrow.bountyIdOf(poster, salt);
        IBountyTypes.Bounty memory otherEvaluator = _terms(address(token), uint128(AMOUNT));
        otherEvaluator.evaluator = stranger;
        IBountyTypes.Bid memory bid2 = _bid(id2, otherEvaluator, provider, 500e18, 2);
        bytes memory sig2 = _signBid(providerKey, bid2);
        vm.expectRevert(BountyEscrow.BidMismatch.selector);
        vm.prank(poster);
        escrow.postFundAndAward(salt, t, bid2, sig2);

        // A bid whose termsHash is the posted record's commitment is accepted by both paths.
        assertEq(_bid(id, b, provider, 500e18, 1).termsHash, escrow.hashBounty(b));
        bid = _bid(id, b, provider, 500e18, 1);
        sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));
        bid2 = _bid(id2, t, provider, 500e18, 2);
        sig2 = _signBid(providerKey, bid2);
        vm.prank(poster);
        escrow.postFundAndAward(salt, t, bid2, sig2);
        assertEq(uint8(_status(id2)), uint8(IBountyTypes.Status.Awarded));
    }

    function test_RevertWhen_AwardTermsHashTampered() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bounty memory other = _terms(address(token), uint128(AMOUNT));
        other.specHash = keccak256("other spec");
        IBountyTypes.Bid memory bid = _bid(id, other, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        // Re-pointing the signed bid at the posted terms breaks the signature.
        bid.termsHash = escrow.hashBounty(b);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    /// @dev Issue 22: the escrow checks the signature over the id and terms hash it derives, so the
    ///      caller may send a bid with `bountyId` and `termsHash` zero (64 bytes less calldata).
    ///      Before, a zeroed bid reverted `BidMismatch`.
    function test_PostFundAndAward_BidWithTheDerivedFieldsLeftZero() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        bytes32 salt = bytes32("compact");
        uint256 id = escrow.bountyIdOf(poster, salt);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 800e18, 5);
        bytes memory sig = _signBid(providerKey, bid);
        bid.bountyId = 0;
        bid.termsHash = bytes32(0);
        vm.prank(poster);
        escrow.postFundAndAward(salt, b, bid, sig);
        b.provider = provider;
        b.price = 800e18;
        assertEq(uint8(escrow.verifyRecord(id, b)), uint8(IBountyTypes.Status.Awarded));
        assertTrue(escrow.isNonceUsed(provider, 5));
    }

    function test_Award_BidWithTheDerivedFieldsLeftZero() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 600e18, 8);
        bytes memory sig = _signBid(providerKey, bid);
        bid.bountyId = 0;
        bid.termsHash = bytes32(0);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));
    }

    /// @dev Leaving the fields zero does not widen what a signature allows: a bid signed for
    ///      another bounty or other terms, zeroed, fails the signature check (and, when the
    ///      fields are sent, `BidMismatch` as before), in `award` and in `postFundAndAward`.
    function testFuzz_ZeroedBidFieldsOnlyPassForTheSignedBountyAndTerms(
        uint256 otherId,
        bytes32 otherTerms,
        bool wrongId,
        bool oneShot
    ) public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        bytes32 salt = bytes32("zeroed");
        uint256 id = oneShot ? escrow.bountyIdOf(poster, salt) : _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 3);
        if (wrongId) {
            vm.assume(otherId != id && otherId != 0);
            bid.bountyId = otherId;
        } else {
            vm.assume(otherTerms != bid.termsHash && otherTerms != bytes32(0));
            bid.termsHash = otherTerms;
        }
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.BidMismatch.selector);
        vm.prank(poster);
        if (oneShot) escrow.postFundAndAward(salt, b, bid, sig);
        else escrow.award(id, b, bid, sig);

        bid.bountyId = 0;
        bid.termsHash = bytes32(0);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        if (oneShot) escrow.postFundAndAward(salt, b, bid, sig);
        else escrow.award(id, b, bid, sig);
    }

    /// @dev A bid signed for terms that differ from the posted record in any single field is
    ///      rejected by `award` and by `postFundAndAward`; the bid for the posted terms passes.
    function testFuzz_BidForChangedTermsIsRejected(uint8 field, uint256 v, bool oneShot) public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        IBountyTypes.Bounty memory s = _terms(address(token), uint128(AMOUNT));
        field = uint8(bound(field, 0, 14));
        if (field == 0) s.poster = address(uint160(v));
        else if (field == 1) s.token = address(uint160(v));
        else if (field == 2) s.amount = uint128(v);
        else if (field == 3) s.price = uint128(v);
        else if (field == 4) s.provider = address(uint160(v));
        else if (field == 5) s.evaluator = address(uint160(v));
        else if (field == 6) s.arbiter = address(uint160(v));
        else if (field == 7) s.deadline = uint64(v);
        else if (field == 8) s.reviewWindow = uint32(v);
        else if (field == 9) s.challengeWindow = uint32(v);
        else if (field == 10) s.feeBps = uint16(v);
        else if (field == 11) s.mode = IBountyTypes.Mode(v % 2);
        else if (field == 12) s.maxWinners = uint8(v);
        else if (field == 13) s.specHash = bytes32(v);
        else s.resultHash = bytes32(v);
        vm.assume(keccak256(abi.encode(s)) != keccak256(abi.encode(b)));

        uint256 id;
        bytes32 salt = bytes32("fuzz");
        if (oneShot) {
            id = escrow.bountyIdOf(poster, salt);
        } else {
            id = _postAndFund(b);
        }
        IBountyTypes.Bid memory bid = _bid(id, s, provider, 500e18, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.expectRevert(BountyEscrow.BidMismatch.selector);
        vm.prank(poster);
        if (oneShot) escrow.postFundAndAward(salt, b, bid, sig);
        else escrow.award(id, b, bid, sig);

        bid = _bid(id, b, provider, 500e18, 1);
        sig = _signBid(providerKey, bid);
        vm.prank(poster);
        if (oneShot) escrow.postFundAndAward(salt, b, bid, sig);
        else escrow.award(id, b, bid, sig);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Awarded));
    }

    // =====================================================================================
    // submit / attest / submitAndAttest
    // =====================================================================================

    function test_Submit() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.warp(block.timestamp + 100);
        bytes32 r = keccak256("r");
        vm.expectEmit(address(escrow));
        emit BountyEscrow.ResultSubmitted(id, provider, r);
        vm.prank(provider);
        escrow.submit(id, b, r);
        (IBountyTypes.Status s, uint40 stamp) = escrow.statusOf(id);
        assertEq(uint8(s), uint8(IBountyTypes.Status.Submitted));
        assertEq(stamp, block.timestamp);
        b.resultHash = r;
        assertEq(uint8(escrow.verifyRecord(id, b)), uint8(IBountyTypes.Status.Submitted));
    }

    function test_RevertWhen_SubmitNotProvider() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.expectRevert(BountyEscrow.NotProvider.selector);
        vm.prank(stranger);
        escrow.submit(id, b, bytes32("r"));
    }

    function test_RevertWhen_SubmitTwice() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Submitted)
        );
        vm.prank(provider);
        escrow.submit(id, b, bytes32("r2"));
    }

    function test_RevertWhen_SubmitWithStaleRecord() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        b.resultHash = 0;
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        vm.prank(provider);
        escrow.submit(id, b, bytes32("r2"));
    }

    function test_RevertWhen_SubmitAfterDeadline() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.warp(b.deadline + 1);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        vm.prank(provider);
        escrow.submit(id, b, bytes32("r"));
    }

    function test_RevertWhen_SubmitZeroResult() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.expectRevert(BountyEscrow.ZeroResult.selector);
        vm.prank(provider);
        escrow.submit(id, b, bytes32(0));
    }

    function test_Attest_AcceptPaysProviderAndRefundsDifference() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 600e18);
        bytes memory sig = _signAtt(evaluatorKey, id, b.resultHash, 1);
        uint256 provBefore = token.balanceOf(provider);
        uint256 postBefore = token.balanceOf(poster);
        uint256 fee = 600e18 * uint256(FEE_BPS) / 10_000;

        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyAttested(id, evaluator, 1, b.resultHash);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyCompleted(id, provider, 600e18 - fee, fee, 400e18);
        vm.prank(stranger); // anyone may relay
        escrow.attest(id, b, 1, sig);

        assertEq(token.balanceOf(provider) - provBefore, 600e18 - fee);
        assertEq(token.balanceOf(poster) - postBefore, 400e18);
        assertEq(escrow.accruedFees(address(token)), fee);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
    }

    function test_Attest_ByEvaluatorWithoutSignature() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        uint256 id = _submitted(b, 1 ether);
        uint256 provBefore = provider.balance;
        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
        uint256 fee = 1 ether * uint256(FEE_BPS) / 10_000;
        assertEq(provider.balance - provBefore, 1 ether - fee);
        assertEq(escrow.accruedFees(address(0)), fee);
        assertEq(address(escrow).balance, fee);
    }

    function test_Attest_ERC1271Evaluator() public {
        EscrowMockWallet wallet = new EscrowMockWallet(evaluator);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.evaluator = address(wallet);
        uint256 id = _submitted(b, 500e18);
        bytes memory sig = _signAtt(evaluatorKey, id, b.resultHash, 1);
        vm.prank(provider);
        escrow.attest(id, b, 1, sig);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
    }

    function test_RevertWhen_AttestERC1271EvaluatorRejects() public {
        EscrowMockWallet wallet = new EscrowMockWallet(evaluator);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.evaluator = address(wallet);
        uint256 id = _submitted(b, 500e18);
        bytes memory sig = _signAtt(providerKey, id, b.resultHash, 1);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(provider);
        escrow.attest(id, b, 1, sig);
    }

    function test_Attest_RejectWithoutArbiterRefundsAtOnce() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.arbiter = address(0);
        uint256 id = _submitted(b, 500e18);
        uint256 postBefore = token.balanceOf(poster);
        bytes memory sig = _signAtt(evaluatorKey, id, b.resultHash, 2);

        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyRejected(id, provider, 0);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyRefunded(id, poster, AMOUNT, IBountyTypes.Status.Refunded);
        escrow.attest(id, b, 2, sig);
        assertEq(token.balanceOf(poster) - postBefore, AMOUNT);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Refunded));
    }

    function test_Attest_RejectWithoutChallengeWindowRefundsAtOnce() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.challengeWindow = 0;
        uint256 id = _rejected(b, 500e18);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Refunded));
        assertEq(token.balanceOf(address(escrow)), 0);
    }

    function test_Attest_RejectWithArbiterPendsChallenge() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyRejected(id, provider, block.timestamp + b.challengeWindow);
        vm.prank(evaluator);
        escrow.attest(id, b, 2, "");
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Rejected));
        assertEq(token.balanceOf(address(escrow)), AMOUNT);
    }

    function test_RevertWhen_AttestInvalidVerdict() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.expectRevert(BountyEscrow.InvalidVerdict.selector);
        vm.prank(evaluator);
        escrow.attest(id, b, 3, "");
        vm.expectRevert(BountyEscrow.InvalidVerdict.selector);
        vm.prank(evaluator);
        escrow.attest(id, b, 0, "");
    }

    function test_RevertWhen_AttestSignatureForOtherVerdict() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        bytes memory sig = _signAtt(evaluatorKey, id, b.resultHash, 2);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(provider);
        escrow.attest(id, b, 1, sig);
    }

    function test_RevertWhen_AttestSignatureForOtherResult() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        bytes memory sig = _signAtt(evaluatorKey, id, keccak256("other"), 1);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(provider);
        escrow.attest(id, b, 1, sig);
    }

    function test_RevertWhen_AttestEmptySignatureFromNonEvaluator() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(provider);
        escrow.attest(id, b, 1, "");
    }

    function test_RevertWhen_AttestNotSubmitted() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Awarded)
        );
        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
    }

    function test_RevertWhen_AttestAfterReviewWindow() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.warp(block.timestamp + b.reviewWindow + 1);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
    }

    function test_RevertWhen_AttestTwice() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Completed)
        );
        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
    }

    function test_SubmitAndAttest_ETH() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        uint256 id = _award(b, 0.5 ether);
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(evaluatorKey, id, r, 1);
        uint256 provBefore = provider.balance;
        uint256 postBefore = poster.balance;
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyAttested(id, evaluator, 1, r);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, sig);
        uint256 fee = 0.5 ether * uint256(FEE_BPS) / 10_000;
        assertEq(provider.balance - provBefore, 0.5 ether - fee);
        assertEq(poster.balance - postBefore, 0.5 ether);
        assertEq(address(escrow).balance, fee);
    }

    function test_SubmitAndAttest_RejectPendsChallenge() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(evaluatorKey, id, r, 2);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 2, sig);
        b.resultHash = r;
        assertEq(uint8(escrow.verifyRecord(id, b)), uint8(IBountyTypes.Status.Rejected));
    }

    function test_SubmitAndAttest_ZeroFeeSkipsLedger() public {
        vm.prank(owner);
        escrow.setFee(0, feeTo);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, uint128(AMOUNT));
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(evaluatorKey, id, r, 1);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, sig);
        assertEq(escrow.accruedFees(address(token)), 0);
        assertEq(token.balanceOf(address(escrow)), 0);
    }

    function test_RevertWhen_SubmitAndAttestNotProvider() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(evaluatorKey, id, r, 1);
        vm.expectRevert(BountyEscrow.NotProvider.selector);
        vm.prank(stranger);
        escrow.submitAndAttest(id, b, r, 1, sig);
    }

    function test_RevertWhen_SubmitAndAttestBadSignature() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(providerKey, id, r, 1);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, sig);
    }

    function test_RevertWhen_SubmitAndAttestWrongChainId() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(evaluatorKey, id, r, 1);
        vm.chainId(8453);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, sig);
    }

    function test_RevertWhen_SubmitAndAttestAfterDeadline() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(evaluatorKey, id, r, 1);
        vm.warp(b.deadline + 1);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, sig);
    }

    function test_RevertWhen_SubmitAndAttestInvalidVerdict() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(evaluatorKey, id, r, 7);
        vm.expectRevert(BountyEscrow.InvalidVerdict.selector);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 7, sig);
    }

    // =====================================================================================
    // claimAfterReview / finalizeRejection / refundExpired / cancel
    // =====================================================================================

    function test_ClaimAfterReview_PosterEvaluatorAutoAccepts() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.evaluator = poster;
        uint256 id = _submitted(b, uint128(AMOUNT));
        vm.warp(block.timestamp + b.reviewWindow + 1);
        uint256 provBefore = token.balanceOf(provider);
        vm.prank(stranger);
        escrow.claimAfterReview(id, b);
        uint256 fee = AMOUNT * FEE_BPS / 10_000;
        assertEq(token.balanceOf(provider) - provBefore, AMOUNT - fee);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
    }

    function test_ClaimAfterReview_SilentThirdPartyEvaluatorRefundsPoster() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.warp(block.timestamp + b.reviewWindow + 1);
        uint256 postBefore = token.balanceOf(poster);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyRefunded(id, poster, AMOUNT, IBountyTypes.Status.Expired);
        vm.prank(stranger);
        escrow.claimAfterReview(id, b);
        assertEq(token.balanceOf(poster) - postBefore, AMOUNT);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Expired));
    }

    function test_RevertWhen_ClaimAfterReviewTooEarly() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.evaluator = poster;
        uint256 id = _submitted(b, 500e18);
        vm.warp(block.timestamp + b.reviewWindow);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        escrow.claimAfterReview(id, b);
    }

    function test_RevertWhen_ClaimAfterReviewNotSubmitted() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Awarded)
        );
        escrow.claimAfterReview(id, b);
    }

    function test_FinalizeRejection() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.warp(block.timestamp + b.challengeWindow + 1);
        uint256 postBefore = token.balanceOf(poster);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyRefunded(id, poster, AMOUNT, IBountyTypes.Status.Refunded);
        vm.prank(stranger);
        escrow.finalizeRejection(id, b);
        assertEq(token.balanceOf(poster) - postBefore, AMOUNT);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Refunded));
    }

    function test_RevertWhen_FinalizeRejectionTooEarly() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.warp(block.timestamp + b.challengeWindow);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        escrow.finalizeRejection(id, b);
    }

    function test_RevertWhen_FinalizeRejectionNotRejected() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Submitted)
        );
        escrow.finalizeRejection(id, b);
    }

    function test_RefundExpired_FundedByStranger() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        uint256 id = _postAndFund(b);
        vm.warp(b.deadline + 1);
        uint256 before = poster.balance;
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyRefunded(id, poster, 1 ether, IBountyTypes.Status.Expired);
        vm.prank(stranger);
        escrow.refundExpired(id, b);
        assertEq(poster.balance - before, 1 ether);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Expired));
        assertEq(address(escrow).balance, 0);
    }

    function test_RefundExpired_Awarded() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.warp(b.deadline + 1);
        uint256 before = token.balanceOf(poster);
        vm.prank(stranger);
        escrow.refundExpired(id, b);
        assertEq(token.balanceOf(poster) - before, AMOUNT);
    }

    function test_RefundExpired_OpenMarksExpired() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        vm.warp(b.deadline + 1);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyRefunded(id, poster, 0, IBountyTypes.Status.Expired);
        vm.prank(stranger);
        escrow.refundExpired(id, b);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Expired));
    }

    function test_RefundExpired_ContestAfterPickWindow() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 2);
        uint256 id = _postAndFund(b);
        vm.prank(provider);
        escrow.submitEntry(id, b, bytes32("e"));
        vm.warp(uint256(b.deadline) + b.reviewWindow);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        escrow.refundExpired(id, b);
        vm.warp(uint256(b.deadline) + b.reviewWindow + 1);
        uint256 before = token.balanceOf(poster);
        escrow.refundExpired(id, b);
        assertEq(token.balanceOf(poster) - before, AMOUNT);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Expired));
    }

    function test_RefundExpired_RevertingPosterIsCreditedAndCanWithdraw() public {
        EscrowActor actor = new EscrowActor();
        vm.deal(address(actor), 10 ether);
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        b.poster = address(actor);
        bytes32 salt = bytes32("actor");
        actor.exec(address(escrow), 1 ether, abi.encodeCall(BountyEscrow.postAndFund, (salt, b)));
        uint256 id = escrow.bountyIdOf(address(actor), salt);
        actor.setMode(EscrowActor.ReceiveMode.Revert);

        vm.warp(b.deadline + 1);
        vm.expectEmit(address(escrow));
        emit PullLedger.PayoutDeferred(address(0), address(actor), 1 ether);
        vm.prank(stranger);
        escrow.refundExpired(id, b);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Expired));
        assertEq(escrow.withdrawable(address(0), address(actor)), 1 ether);

        // Still refusing: withdraw reverts, withdrawTo another address works.
        vm.expectRevert(PullLedger.TransferFailed.selector);
        actor.exec(address(escrow), 0, abi.encodeCall(PullLedger.withdraw, (address(0))));
        address sink = makeAddr("sink");
        actor.exec(address(escrow), 0, abi.encodeCall(PullLedger.withdrawTo, (address(0), sink)));
        assertEq(sink.balance, 1 ether);
        assertEq(escrow.withdrawable(address(0), address(actor)), 0);
    }

    function test_RefundExpired_GasGriefingPosterCannotBlock() public {
        EscrowActor actor = new EscrowActor();
        vm.deal(address(actor), 10 ether);
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        b.poster = address(actor);
        bytes32 salt = bytes32("grief");
        actor.exec(address(escrow), 1 ether, abi.encodeCall(BountyEscrow.postAndFund, (salt, b)));
        uint256 id = escrow.bountyIdOf(address(actor), salt);
        actor.setMode(EscrowActor.ReceiveMode.BurnGas);
        vm.warp(b.deadline + 1);
        escrow.refundExpired{gas: 500_000}(id, b);
        assertEq(escrow.withdrawable(address(0), address(actor)), 1 ether);
        actor.setMode(EscrowActor.ReceiveMode.Accept);
        actor.exec(address(escrow), 0, abi.encodeCall(PullLedger.withdraw, (address(0))));
        assertEq(address(actor).balance, 10 ether);
    }

    function test_RevertWhen_RefundExpiredBeforeDeadline() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        vm.warp(b.deadline);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        escrow.refundExpired(id, b);
    }

    function test_RevertWhen_RefundExpiredSubmitted() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.warp(b.deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Submitted)
        );
        escrow.refundExpired(id, b);
    }

    function test_RevertWhen_RefundExpiredTwice() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        vm.warp(b.deadline + 1);
        escrow.refundExpired(id, b);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Expired)
        );
        escrow.refundExpired(id, b);
    }

    function test_Cancel_Funded() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        uint256 before = token.balanceOf(poster);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyCancelled(id, poster, AMOUNT);
        vm.prank(poster);
        escrow.cancel(id, b);
        assertEq(token.balanceOf(poster) - before, AMOUNT);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Cancelled));
    }

    function test_Cancel_Open() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyCancelled(id, poster, 0);
        vm.prank(poster);
        escrow.cancel(id, b);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Cancelled));
    }

    function test_RevertWhen_CancelNotPoster() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        vm.expectRevert(BountyEscrow.NotPoster.selector);
        vm.prank(stranger);
        escrow.cancel(id, b);
    }

    function test_RevertWhen_CancelAwarded() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Awarded)
        );
        vm.prank(poster);
        escrow.cancel(id, b);
    }

    function test_RevertWhen_CancelContestWithEntries() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 2);
        uint256 id = _postAndFund(b);
        vm.prank(provider);
        escrow.submitEntry(id, b, bytes32("e"));
        vm.expectRevert(BountyEscrow.HasEntries.selector);
        vm.prank(poster);
        escrow.cancel(id, b);
    }

    // =====================================================================================
    // Disputes
    // =====================================================================================

    function test_Dispute_ByProviderAfterRejection() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.DisputeOpened(id, provider, BOND);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Disputed));
        assertEq(escrow.disputeOpener(id), provider);
        assertEq(address(escrow).balance, BOND);
    }

    function test_Dispute_ByPosterWhileSubmitted() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.prank(poster);
        escrow.dispute{value: BOND}(id, b);
        assertEq(escrow.disputeOpener(id), poster);
    }

    function test_RevertWhen_DisputeWithoutArbiter() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.arbiter = address(0);
        uint256 id = _submitted(b, 500e18);
        vm.expectRevert(BountyEscrow.NoArbiter.selector);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);
    }

    function test_RevertWhen_DisputeWrongBond() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.expectRevert(PullLedger.InvalidValue.selector);
        vm.prank(provider);
        escrow.dispute{value: BOND - 1}(id, b);
    }

    function test_RevertWhen_DisputeByStranger() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.expectRevert(BountyEscrow.NotParty.selector);
        vm.prank(stranger);
        escrow.dispute{value: BOND}(id, b);
    }

    function test_RevertWhen_DisputeRejectionByPoster() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.expectRevert(BountyEscrow.NotProvider.selector);
        vm.prank(poster);
        escrow.dispute{value: BOND}(id, b);
    }

    function test_RevertWhen_DisputeAfterChallengeWindow() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.warp(block.timestamp + b.challengeWindow + 1);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);
    }

    function test_RevertWhen_DisputeAfterReviewWindow() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        vm.warp(block.timestamp + b.reviewWindow + 1);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        vm.prank(poster);
        escrow.dispute{value: BOND}(id, b);
    }

    function test_RevertWhen_DisputeWrongStatus() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _award(b, 500e18);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Awarded)
        );
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);
    }

    function test_Resolve_ProviderWinsAndGetsBondBack() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);

        uint256 provTok = token.balanceOf(provider);
        uint256 postTok = token.balanceOf(poster);
        uint256 provEth = provider.balance;
        uint256 gross = 500e18 * uint256(8_000) / 10_000;
        uint256 fee = gross * FEE_BPS / 10_000;

        vm.expectEmit(address(escrow));
        emit BountyEscrow.DisputeResolved(id, 8_000, gross - fee, AMOUNT - gross, fee, 0);
        vm.prank(arbiter);
        escrow.resolve(id, b, 8_000);

        assertEq(token.balanceOf(provider) - provTok, gross - fee);
        assertEq(token.balanceOf(poster) - postTok, AMOUNT - gross);
        assertEq(provider.balance - provEth, BOND);
        assertEq(escrow.accruedFees(address(token)), fee);
        assertEq(registry.slashCalls(), 0);
        assertEq(escrow.disputeOpener(id), address(0));
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Resolved));
    }

    function test_Resolve_PosterWinsSlashesProviderAndTakesBond() public {
        registry.setStake(provider, 10_000e18);
        nextBond = 3 ether;
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);

        uint256 postEth = poster.balance;
        uint256 postTok = token.balanceOf(poster);
        uint256 provTok = token.balanceOf(provider);
        uint256 gross = 500e18 * uint256(1_000) / 10_000;
        uint256 fee = gross * FEE_BPS / 10_000;
        uint256 slash = 3 ether * uint256(SLASH_BPS) / 10_000;

        vm.expectCall(address(registry), abi.encodeCall(IStakeRegistry.slash, (provider, slash, poster)));
        vm.expectEmit(address(escrow));
        emit BountyEscrow.DisputeResolved(id, 1_000, gross - fee, AMOUNT - gross, fee, slash);
        vm.prank(arbiter);
        escrow.resolve(id, b, 1_000);

        assertEq(token.balanceOf(provider) - provTok, gross - fee);
        assertEq(token.balanceOf(poster) - postTok, AMOUNT - gross);
        assertEq(poster.balance - postEth, BOND);
        assertEq(registry.totalSlashed(), slash);
        assertEq(registry.lastSlashTo(), poster);
        assertEq(escrow.bondOf(id), 0, "the bond is spent");
    }

    function test_Resolve_PosterOpenedAndLostBondToProvider() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        uint256 id = _submitted(b, 1 ether);
        vm.prank(poster);
        escrow.dispute{value: BOND}(id, b);
        uint256 provEth = provider.balance;
        vm.prank(arbiter);
        escrow.resolve(id, b, 10_000);
        uint256 fee = 1 ether * uint256(FEE_BPS) / 10_000;
        assertEq(provider.balance - provEth, 1 ether - fee + BOND);
        assertEq(registry.slashCalls(), 0);
        assertEq(address(escrow).balance, fee);
    }

    function test_Resolve_PosterOpenedAndWonGetsBondBack() public {
        registry.setStake(provider, 1 ether);
        nextBond = 1 ether;
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        uint256 id = _submitted(b, 1 ether);
        vm.prank(poster);
        escrow.dispute{value: BOND}(id, b);
        uint256 postEth = poster.balance;
        vm.prank(arbiter);
        escrow.resolve(id, b, 0);
        // Poster gets the whole amount back plus its bond; the provider is slashed (capped by stake).
        assertEq(poster.balance - postEth, 1 ether + BOND);
        assertEq(registry.totalSlashed(), 0.5 ether);
        assertEq(address(escrow).balance, 0);
    }

    function test_Resolve_WithoutRegistryDoesNotSlash() public {
        BountyEscrow noReg = new BountyEscrow(owner, feeTo, FEE_BPS, IStakeRegistry(address(0)), 0, SLASH_BPS);
        escrow = noReg;
        _fundActor(poster);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.prank(provider);
        escrow.dispute(id, b);
        vm.prank(arbiter);
        escrow.resolve(id, b, 0);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Resolved));
        assertEq(token.balanceOf(address(escrow)), 0);
    }

    // SECURITY.md L6: the stake registry cannot block a ruling.
    function test_ResolveSucceedsWhenSlashReverts() public {
        registry.setStake(provider, 10_000e18);
        registry.setSlashReverts(true);
        nextBond = 1_000e18;
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);

        uint256 postEth = poster.balance;
        uint256 postTok = token.balanceOf(poster);
        uint256 provTok = token.balanceOf(provider);
        uint256 gross = 500e18 * uint256(1_000) / 10_000;
        uint256 fee = gross * FEE_BPS / 10_000;
        uint256 slash = 1_000e18 * uint256(SLASH_BPS) / 10_000;

        vm.expectCall(address(registry), abi.encodeCall(IStakeRegistry.slash, (provider, slash, poster)));
        vm.expectEmit(address(escrow));
        emit BountyEscrow.SlashFailed(id, provider, slash);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.DisputeResolved(id, 1_000, gross - fee, AMOUNT - gross, fee, 0);
        vm.prank(arbiter);
        escrow.resolve(id, b, 1_000);

        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Resolved));
        assertEq(escrow.disputeOpener(id), address(0));
        assertEq(token.balanceOf(provider) - provTok, gross - fee);
        assertEq(token.balanceOf(poster) - postTok, AMOUNT - gross);
        assertEq(poster.balance - postEth, BOND);
        assertEq(escrow.accruedFees(address(token)), fee);
        assertEq(token.balanceOf(address(escrow)), fee);
        assertEq(address(escrow).balance, 0);
        assertEq(registry.slashCalls(), 0);
        assertEq(registry.stakeOf(provider), 10_000e18);
    }

    /// @dev The L6 deployment mistake itself: a real AgentRegistry whose `escrow` was never set
    ///      reverts `NotEscrow` on `slash`; the ruling still settles.
    function test_ResolveSucceedsWhenRegistryNotWired() public {
        AgentRegistry reg = new AgentRegistry(owner, 1 hours);
        escrow = new BountyEscrow(owner, feeTo, FEE_BPS, IStakeRegistry(address(reg)), BOND, SLASH_BPS);
        _fundActor(poster);
        _fundActor(provider);
        vm.prank(provider);
        reg.stake{value: 1 ether}();
        nextBond = 1 ether;
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        uint256 id = _rejected(b, 1 ether);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);

        uint256 postEth = poster.balance;
        vm.expectEmit(address(escrow));
        emit BountyEscrow.SlashFailed(id, provider, 0.5 ether);
        vm.prank(arbiter);
        escrow.resolve(id, b, 0);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Resolved));
        assertEq(poster.balance - postEth, 1 ether + BOND);
        assertEq(address(escrow).balance, 0);
        assertEq(reg.stakeOf(provider), 1 ether);
    }

    function test_RevertWhen_ResolveNotArbiter() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);
        vm.expectRevert(BountyEscrow.NotArbiter.selector);
        vm.prank(poster);
        escrow.resolve(id, b, 0);
    }

    function test_RevertWhen_ResolveNotDisputed() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Rejected)
        );
        vm.prank(arbiter);
        escrow.resolve(id, b, 0);
    }

    function test_RevertWhen_ResolveBpsTooHigh() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _rejected(b, 500e18);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);
        vm.expectRevert(BountyEscrow.InvalidBps.selector);
        vm.prank(arbiter);
        escrow.resolve(id, b, 10_001);
    }

    // =====================================================================================
    // Contests
    // =====================================================================================

    function _contestWithEntries(address[] memory entrants)
        internal
        returns (uint256 id, IBountyTypes.Bounty memory b)
    {
        b = _contestTerms(address(token), uint128(AMOUNT), 3);
        id = _postAndFund(b);
        for (uint256 i; i < entrants.length; ++i) {
            vm.prank(entrants[i]);
            escrow.submitEntry(id, b, keccak256(abi.encode(entrants[i])));
        }
    }

    function _entrants() internal returns (address[] memory e) {
        e = new address[](3);
        e[0] = makeAddr("alice");
        e[1] = makeAddr("bob");
        e[2] = makeAddr("carol");
    }

    function test_Contest_SplitPaysWinners() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        assertEq(escrow.entryCount(id), 3);
        assertEq(escrow.entries(id, e[1]), keccak256(abi.encode(e[1])));

        address[] memory winners = new address[](2);
        winners[0] = e[2];
        winners[1] = e[0];
        uint16[] memory shares = new uint16[](2);
        shares[0] = 7_000;
        shares[1] = 3_000;

        vm.warp(b.deadline + 1);
        uint256 g0 = AMOUNT * 7_000 / 10_000;
        uint256 g1 = AMOUNT - g0;
        uint256 f0 = g0 * FEE_BPS / 10_000;
        uint256 f1 = g1 * FEE_BPS / 10_000;
        vm.expectEmit(address(escrow));
        emit BountyEscrow.WinnerPaid(id, e[2], g0 - f0, f0);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.WinnerPaid(id, e[0], g1 - f1, f1);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.BountyCompleted(id, address(0), AMOUNT - f0 - f1, f0 + f1, 0);
        vm.prank(evaluator);
        escrow.pickWinners(id, b, winners, shares);

        assertEq(token.balanceOf(e[2]), g0 - f0);
        assertEq(token.balanceOf(e[0]), g1 - f1);
        assertEq(token.balanceOf(e[1]), 0);
        assertEq(escrow.accruedFees(address(token)), f0 + f1);
        assertEq(token.balanceOf(address(escrow)), f0 + f1);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
    }

    function test_SubmitEntry_EmitsEvent() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 1);
        uint256 id = _postAndFund(b);
        vm.expectEmit(address(escrow));
        emit BountyEscrow.EntrySubmitted(id, stranger, bytes32("e"));
        vm.prank(stranger);
        escrow.submitEntry(id, b, bytes32("e"));
    }

    function test_RevertWhen_SubmitEntryAuction() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        vm.expectRevert(BountyEscrow.WrongMode.selector);
        vm.prank(stranger);
        escrow.submitEntry(id, b, bytes32("e"));
    }

    function test_RevertWhen_SubmitEntryTwice() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 1);
        uint256 id = _postAndFund(b);
        vm.startPrank(stranger);
        escrow.submitEntry(id, b, bytes32("e"));
        vm.expectRevert(BountyEscrow.AlreadyEntered.selector);
        escrow.submitEntry(id, b, bytes32("f"));
        vm.stopPrank();
    }

    function test_RevertWhen_SubmitEntryAfterDeadline() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 1);
        uint256 id = _postAndFund(b);
        vm.warp(b.deadline + 1);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        vm.prank(stranger);
        escrow.submitEntry(id, b, bytes32("e"));
    }

    function test_RevertWhen_SubmitEntryZeroResult() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 1);
        uint256 id = _postAndFund(b);
        vm.expectRevert(BountyEscrow.ZeroResult.selector);
        vm.prank(stranger);
        escrow.submitEntry(id, b, bytes32(0));
    }

    function test_RevertWhen_SubmitEntryNotFunded() public {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 1);
        vm.prank(poster);
        uint256 id = escrow.post(bytes32("s"), b);
        vm.expectRevert(abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Open));
        vm.prank(stranger);
        escrow.submitEntry(id, b, bytes32("e"));
    }

    function test_RevertWhen_SubmitEntryInsufficientStake() public {
        vm.prank(owner);
        escrow.setStakeGate(1 ether);
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 1);
        uint256 id = _postAndFund(b);
        vm.expectRevert(BountyEscrow.InsufficientStake.selector);
        vm.prank(stranger);
        escrow.submitEntry(id, b, bytes32("e"));
        registry.setStake(stranger, 1 ether);
        vm.prank(stranger);
        escrow.submitEntry(id, b, bytes32("e"));
    }

    function _pick(uint256 id, IBountyTypes.Bounty memory b, address[] memory w, uint16[] memory s) internal {
        vm.prank(evaluator);
        escrow.pickWinners(id, b, w, s);
    }

    function _one(address a) internal pure returns (address[] memory w) {
        w = new address[](1);
        w[0] = a;
    }

    function _shares1(uint16 s) internal pure returns (uint16[] memory x) {
        x = new uint16[](1);
        x[0] = s;
    }

    function test_RevertWhen_PickWinnersNotEvaluator() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.warp(b.deadline + 1);
        vm.expectRevert(BountyEscrow.NotEvaluator.selector);
        vm.prank(poster);
        escrow.pickWinners(id, b, _one(e[0]), _shares1(10_000));
    }

    function test_RevertWhen_PickWinnersBeforeDeadline() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.expectRevert(BountyEscrow.TooEarly.selector);
        _pick(id, b, _one(e[0]), _shares1(10_000));
    }

    function test_RevertWhen_PickWinnersAfterReviewWindow() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.warp(uint256(b.deadline) + b.reviewWindow + 1);
        vm.expectRevert(BountyEscrow.TooLate.selector);
        _pick(id, b, _one(e[0]), _shares1(10_000));
    }

    function test_RevertWhen_PickWinnersWithoutEntry() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.warp(b.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(BountyEscrow.NoEntry.selector, stranger));
        _pick(id, b, _one(stranger), _shares1(10_000));
    }

    function test_RevertWhen_PickWinnersDuplicate() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.warp(b.deadline + 1);
        address[] memory w = new address[](2);
        w[0] = e[1];
        w[1] = e[1];
        uint16[] memory s = new uint16[](2);
        s[0] = 5_000;
        s[1] = 5_000;
        vm.expectRevert(abi.encodeWithSelector(BountyEscrow.DuplicateWinner.selector, e[1]));
        _pick(id, b, w, s);
    }

    function test_RevertWhen_PickWinnersTooMany() public {
        address[] memory e = _entrants();
        IBountyTypes.Bounty memory b = _contestTerms(address(token), uint128(AMOUNT), 2);
        uint256 id = _postAndFund(b);
        for (uint256 i; i < 3; ++i) {
            vm.prank(e[i]);
            escrow.submitEntry(id, b, bytes32("e"));
        }
        vm.warp(b.deadline + 1);
        uint16[] memory s = new uint16[](3);
        s[0] = 4_000;
        s[1] = 3_000;
        s[2] = 3_000;
        vm.expectRevert(BountyEscrow.InvalidWinners.selector);
        _pick(id, b, e, s);
    }

    function test_RevertWhen_PickWinnersEmptyOrLengthMismatch() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.warp(b.deadline + 1);
        vm.expectRevert(BountyEscrow.InvalidWinners.selector);
        _pick(id, b, new address[](0), new uint16[](0));
        vm.expectRevert(BountyEscrow.InvalidWinners.selector);
        _pick(id, b, _one(e[0]), new uint16[](2));
    }

    function test_RevertWhen_PickWinnersSharesNotWhole() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.warp(b.deadline + 1);
        vm.expectRevert(BountyEscrow.InvalidShares.selector);
        _pick(id, b, _one(e[0]), _shares1(9_999));
    }

    function test_RevertWhen_PickWinnersZeroShare() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.warp(b.deadline + 1);
        address[] memory w = new address[](2);
        w[0] = e[0];
        w[1] = e[1];
        uint16[] memory s = new uint16[](2);
        s[0] = 10_000;
        vm.expectRevert(BountyEscrow.InvalidShares.selector);
        _pick(id, b, w, s);
    }

    function test_RevertWhen_PickWinnersAuction() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        vm.warp(b.deadline + 1);
        vm.expectRevert(BountyEscrow.WrongMode.selector);
        _pick(id, b, _one(provider), _shares1(10_000));
    }

    function test_RevertWhen_PickWinnersTwice() public {
        address[] memory e = _entrants();
        (uint256 id, IBountyTypes.Bounty memory b) = _contestWithEntries(e);
        vm.warp(b.deadline + 1);
        _pick(id, b, _one(e[0]), _shares1(10_000));
        vm.expectRevert(
            abi.encodeWithSelector(BountyEscrow.InvalidStatus.selector, IBountyTypes.Status.Completed)
        );
        _pick(id, b, _one(e[0]), _shares1(10_000));
    }

    // =====================================================================================
    // Ledger
    // =====================================================================================

    function test_RevertingProvider_PayoutDeferredThenWithdrawn() public {
        EscrowActor actor = new EscrowActor();
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 1 ether, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        b.provider = provider;
        b.price = 1 ether;
        // Make the provider's address revert on receive by etching the actor's code there.
        vm.etch(provider, address(actor).code);
        EscrowActor(payable(provider)).setMode(EscrowActor.ReceiveMode.Revert);

        bytes32 r = keccak256("r");
        bytes memory att = _signAtt(evaluatorKey, id, r, 1);
        uint256 fee = 1 ether * uint256(FEE_BPS) / 10_000;
        vm.expectEmit(address(escrow));
        emit PullLedger.PayoutDeferred(address(0), provider, 1 ether - fee);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, att);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
        assertEq(escrow.withdrawable(address(0), provider), 1 ether - fee);

        EscrowActor(payable(provider)).setMode(EscrowActor.ReceiveMode.Accept);
        uint256 before = provider.balance;
        vm.expectEmit(address(escrow));
        emit PullLedger.Withdrawn(address(0), provider, provider, 1 ether - fee);
        vm.prank(provider);
        escrow.withdraw(address(0));
        assertEq(provider.balance - before, 1 ether - fee);
        assertEq(escrow.withdrawable(address(0), provider), 0);
    }

    function test_BlacklistedRecipient_ERC20PayoutDeferred() public {
        EscrowBlacklistToken bl = new EscrowBlacklistToken();
        bl.mint(poster, AMOUNT);
        vm.prank(poster);
        bl.approve(address(escrow), AMOUNT);
        IBountyTypes.Bounty memory b = _terms(address(bl), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        bl.setBlacklisted(provider, true);

        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
        uint256 fee = 500e18 * uint256(FEE_BPS) / 10_000;
        assertEq(escrow.withdrawable(address(bl), provider), 500e18 - fee);
        assertEq(bl.balanceOf(poster), 500e18);

        address alt = makeAddr("alt");
        vm.prank(provider);
        escrow.withdrawTo(address(bl), alt);
        assertEq(bl.balanceOf(alt), 500e18 - fee);
    }

    function test_FeeRecipientWithdrawsFees() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, uint128(AMOUNT));
        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
        uint256 fee = AMOUNT * FEE_BPS / 10_000;
        assertEq(escrow.withdrawable(address(token), feeTo), 0, "fees wait in the pool");
        vm.expectEmit(address(escrow));
        emit BountyEscrow.FeesCollected(address(token), feeTo, fee);
        vm.prank(stranger);
        assertEq(escrow.collectFees(address(token)), fee);
        assertEq(escrow.accruedFees(address(token)), 0);
        assertEq(token.balanceOf(feeTo), fee, "pushed to the recipient");
        assertEq(token.balanceOf(address(escrow)), 0);
    }

    /// @dev A recipient that cannot take the push (here ETH to a contract that refuses it) is
    ///      credited in the ledger instead, like every payout.
    function test_CollectFees_CreditsTheLedgerWhenThePushFails() public {
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        uint256 id = _submitted(b, 1 ether);
        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
        uint256 fee = 1 ether * uint256(FEE_BPS) / 10_000;
        address refuser = address(new EthRejecter());
        vm.prank(owner);
        escrow.setFee(FEE_BPS, refuser);
        vm.expectEmit(address(escrow));
        emit PullLedger.PayoutDeferred(address(0), refuser, fee);
        escrow.collectFees(address(0));
        assertEq(escrow.withdrawable(address(0), refuser), fee);
        assertEq(address(escrow).balance, fee);
    }

    /// @dev Issue 22: fees accrue per token and go to the recipient current at collection (before,
    ///      settlement credited the recipient current then, so the old one kept these fees).
    function test_CollectFees_CreditsTheRecipientCurrentAtCollection() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, uint128(AMOUNT));
        vm.prank(evaluator);
        escrow.attest(id, b, 1, "");
        uint256 fee = AMOUNT * FEE_BPS / 10_000;
        address next = makeAddr("nextFeeTo");
        vm.prank(owner);
        escrow.setFee(FEE_BPS, next);
        escrow.collectFees(address(token));
        assertEq(token.balanceOf(next), fee);
        assertEq(token.balanceOf(feeTo), 0);
    }

    function test_RevertWhen_CollectFeesWithNothingAccrued() public {
        vm.expectRevert(PullLedger.NothingToWithdraw.selector);
        escrow.collectFees(address(token));
    }

    /// @dev The pool grows by exactly `price * feeBps / 10_000` per completed bounty, whatever
    ///      the fee, and `collectFees` moves all of it, once.
    function testFuzz_FeePoolIsExact(uint128 price, uint16 fee, uint8 n) public {
        fee = uint16(bound(fee, 0, escrow.MAX_FEE_BPS()));
        price = uint128(bound(price, 1, AMOUNT));
        n = uint8(bound(n, 1, 4));
        vm.prank(owner);
        escrow.setFee(fee, feeTo);
        for (uint256 i; i < n; ++i) {
            IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
            uint256 id = _submitted(b, price);
            vm.prank(evaluator);
            escrow.attest(id, b, 1, "");
        }
        uint256 expected = uint256(n) * (uint256(price) * fee / 10_000);
        assertEq(escrow.accruedFees(address(token)), expected);
        if (expected == 0) return;
        assertEq(token.balanceOf(address(escrow)), expected);
        assertEq(escrow.collectFees(address(token)), expected);
        assertEq(token.balanceOf(feeTo), expected);
        assertEq(token.balanceOf(address(escrow)), 0);
        vm.expectRevert(PullLedger.NothingToWithdraw.selector);
        escrow.collectFees(address(token));
    }

    function test_Reentrancy_RecipientCannotReenter() public {
        // The provider's receive() tries to re-enter; the guard makes its call revert, so the
        // ETH push fails and the payout is deferred instead.
        ReenteringReceiver rr = new ReenteringReceiver(escrow);
        IBountyTypes.Bounty memory b = _terms(address(0), 1 ether);
        b.evaluator = poster;
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 1 ether, 1);
        bytes memory sig = _signBid(providerKey, bid);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        b.provider = provider;
        b.price = 1 ether;
        vm.prank(provider);
        escrow.submit(id, b, bytes32("r"));
        b.resultHash = bytes32("r");
        vm.etch(provider, address(rr).code);
        vm.store(provider, bytes32(0), bytes32(uint256(uint160(address(escrow)))));

        vm.prank(poster);
        escrow.attest(id, b, 1, "");
        uint256 fee = 1 ether * uint256(FEE_BPS) / 10_000;
        assertEq(escrow.withdrawable(address(0), provider), 1 ether - fee);
    }

    function test_RevertWhen_WithdrawNothing() public {
        vm.expectRevert(PullLedger.NothingToWithdraw.selector);
        vm.prank(stranger);
        escrow.withdraw(address(token));
    }

    function test_RevertWhen_WithdrawToZero() public {
        vm.expectRevert(PullLedger.ZeroAddress.selector);
        vm.prank(stranger);
        escrow.withdrawTo(address(token), address(0));
    }

    // =====================================================================================
    // Views
    // =====================================================================================

    function test_HashBid_MatchesManualEIP712() public view {
        IBountyTypes.Bid memory bid = _bid(1, _terms(address(token), uint128(AMOUNT)), provider, 2, 3);
        bid.eta = 77;
        bid.bond = 0.5 ether;
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("ReefBountyEscrow"),
                keccak256("1"),
                block.chainid,
                address(escrow)
            )
        );
        assertEq(escrow.domainSeparator(), domain);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Bid(uint256 bountyId,bytes32 termsHash,address bidder,uint256 amount,uint64 deadline,uint32 eta,uint256 bond,uint256 nonce)"
                ),
                bid.bountyId,
                bid.termsHash,
                bid.bidder,
                bid.amount,
                bid.deadline,
                bid.eta,
                bid.bond,
                bid.nonce
            )
        );
        assertEq(escrow.hashBid(bid), keccak256(abi.encodePacked(hex"1901", domain, structHash)));

        IBountyTypes.Attestation memory att =
            IBountyTypes.Attestation({bountyId: 9, provider: provider, resultHash: bytes32("r"), verdict: 1});
        bytes32 attHash = keccak256(
            abi.encode(
                keccak256("Attestation(uint256 bountyId,address provider,bytes32 resultHash,uint8 verdict)"),
                9,
                provider,
                att.resultHash,
                1
            )
        );
        assertEq(escrow.hashAttestation(att), keccak256(abi.encodePacked(hex"1901", domain, attHash)));
    }

    function test_HashBounty_EqualsAbiEncode() public view {
        IBountyTypes.Bounty memory b = _contestTerms(address(token), 123, 4);
        b.provider = stranger;
        b.resultHash = bytes32("x");
        assertEq(escrow.hashBounty(b), keccak256(abi.encode(b)));
    }

    function test_StatusOf_UnknownIsNone() public view {
        (IBountyTypes.Status s, uint40 stamp) = escrow.statusOf(12345);
        assertEq(uint8(s), uint8(IBountyTypes.Status.None));
        assertEq(stamp, 0);
        assertEq(escrow.recordOf(12345), 0);
    }

    function test_RevertWhen_VerifyRecordMismatch() public {
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        b.specHash = bytes32("tampered");
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        escrow.verifyRecord(id, b);
    }

    // =====================================================================================
    // Fuzz
    // =====================================================================================

    function testFuzz_SettlementConservesFunds(uint128 amount, uint128 price, uint16 fee, bool eth) public {
        amount = uint128(bound(amount, 1, 1e30));
        price = uint128(bound(price, 1, amount));
        fee = uint16(bound(fee, 0, 1_000));
        vm.prank(owner);
        escrow.setFee(fee, feeTo);
        address tkn = eth ? address(0) : address(token);
        if (eth) vm.deal(poster, uint256(amount));
        else token.mint(poster, amount);

        IBountyTypes.Bounty memory b = _terms(tkn, amount);
        uint256 id = _award(b, price);
        uint256 provBefore = _bal(tkn, provider);
        uint256 postBefore = _bal(tkn, poster);
        _submitAndAccept(id, b);

        uint256 toProvider = _bal(tkn, provider) - provBefore;
        uint256 toPoster = _bal(tkn, poster) - postBefore;
        uint256 feeAccrued = escrow.accruedFees(tkn);
        assertEq(toProvider + toPoster + feeAccrued, amount);
        assertEq(feeAccrued, uint256(price) * fee / 10_000);
        assertEq(toPoster, amount - price);
        assertEq(_bal(tkn, address(escrow)), feeAccrued);
    }

    function _submitAndAccept(uint256 id, IBountyTypes.Bounty memory b) internal {
        bytes32 r = keccak256("r");
        bytes memory sig = _signAtt(evaluatorKey, id, r, 1);
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, sig);
    }

    function testFuzz_ResolveConservesFunds(uint128 amount, uint128 price, uint16 providerBps, uint16 fee)
        public
    {
        amount = uint128(bound(amount, 1, 1e30));
        price = uint128(bound(price, 1, amount));
        providerBps = uint16(bound(providerBps, 0, 10_000));
        fee = uint16(bound(fee, 0, 1_000));
        vm.prank(owner);
        escrow.setFee(fee, feeTo);
        token.mint(poster, amount);
        registry.setStake(provider, type(uint128).max);
        nextBond = uint256(price) % 100 ether; // stake units, unrelated to the token amount

        IBountyTypes.Bounty memory b = _terms(address(token), amount);
        uint256 id = _rejected(b, price);
        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);
        uint256 provBefore = token.balanceOf(provider);
        uint256 postBefore = token.balanceOf(poster);
        uint256 provEth = provider.balance;
        uint256 postEth = poster.balance;
        vm.prank(arbiter);
        escrow.resolve(id, b, providerBps);

        uint256 toProvider = token.balanceOf(provider) - provBefore;
        uint256 toPoster = token.balanceOf(poster) - postBefore;
        uint256 feeAccrued = escrow.accruedFees(address(token));
        assertEq(toProvider + toPoster + feeAccrued, amount);
        assertEq(token.balanceOf(address(escrow)), feeAccrued);
        assertEq(address(escrow).balance, 0);
        if (providerBps >= 5_000) {
            assertEq(provider.balance - provEth, BOND);
            assertEq(registry.slashCalls(), 0);
        } else {
            assertEq(poster.balance - postEth, BOND);
            assertEq(registry.totalSlashed(), nextBond * SLASH_BPS / 10_000);
        }
    }

    function testFuzz_ContestConservesFunds(uint128 amount, uint16 s0, uint16 s1, uint16 fee) public {
        amount = uint128(bound(amount, 1, 1e30));
        s0 = uint16(bound(s0, 1, 9_998));
        s1 = uint16(bound(s1, 1, 9_999 - s0));
        fee = uint16(bound(fee, 0, 1_000));
        vm.prank(owner);
        escrow.setFee(fee, feeTo);
        token.mint(poster, amount);

        address[] memory e = _entrants();
        IBountyTypes.Bounty memory b = _contestTerms(address(token), amount, 3);
        uint256 id = _postAndFund(b);
        for (uint256 i; i < 3; ++i) {
            vm.prank(e[i]);
            escrow.submitEntry(id, b, bytes32("e"));
        }
        uint16[] memory shares = new uint16[](3);
        shares[0] = s0;
        shares[1] = s1;
        shares[2] = uint16(10_000 - s0 - s1);
        vm.warp(b.deadline + 1);
        _pick(id, b, e, shares);
        uint256 paid = token.balanceOf(e[0]) + token.balanceOf(e[1]) + token.balanceOf(e[2]);
        assertEq(paid + escrow.accruedFees(address(token)), amount);
        assertEq(token.balanceOf(address(escrow)), escrow.accruedFees(address(token)));
    }

    function testFuzz_SubmitRespectsDeadline(uint64 duration, uint64 elapsed) public {
        duration = uint64(bound(duration, 1, 365 days));
        elapsed = uint64(bound(elapsed, 0, 2 * 365 days));
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        b.deadline = uint64(block.timestamp) + duration;
        uint256 id = _award(b, 500e18);
        vm.warp(block.timestamp + elapsed);
        if (block.timestamp > b.deadline) {
            vm.expectRevert(BountyEscrow.TooLate.selector);
            vm.prank(provider);
            escrow.submit(id, b, bytes32("r"));
            escrow.refundExpired(id, b);
            assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Expired));
        } else {
            vm.expectRevert(BountyEscrow.TooEarly.selector);
            escrow.refundExpired(id, b);
            vm.prank(provider);
            escrow.submit(id, b, bytes32("r"));
            assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Submitted));
        }
    }

    function testFuzz_BidSignedByRandomKeyFails(uint256 key) public {
        key = bound(key, 1, SECP256K1_ORDER - 1);
        vm.assume(key != providerKey);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, provider, 500e18, 1);
        bytes memory sig = _signBid(key, bid);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
    }

    function testFuzz_BidSignedByBidderKeySucceeds(uint256 key, uint256 nonce, uint128 price) public {
        key = bound(key, 1, SECP256K1_ORDER - 1);
        price = uint128(bound(price, 1, AMOUNT));
        address bidder = vm.addr(key);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        IBountyTypes.Bid memory bid = _bid(id, b, bidder, price, nonce);
        bytes memory sig = _signBid(key, bid);
        vm.prank(poster);
        escrow.award(id, b, bid, sig);
        assertTrue(escrow.isNonceUsed(bidder, nonce));
    }

    function testFuzz_AttestationSignedByRandomKeyFails(uint256 key, bool accept) public {
        key = bound(key, 1, SECP256K1_ORDER - 1);
        vm.assume(key != evaluatorKey);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _submitted(b, 500e18);
        uint8 verdict = accept ? 1 : 2;
        bytes memory sig = _signAtt(key, id, b.resultHash, verdict);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        vm.prank(provider);
        escrow.attest(id, b, verdict, sig);
    }

    function testFuzz_RecordPacksStatusAndStamp(uint40 t) public {
        t = uint40(bound(t, block.timestamp, type(uint40).max - 30 days));
        vm.warp(t);
        IBountyTypes.Bounty memory b = _terms(address(token), uint128(AMOUNT));
        uint256 id = _postAndFund(b);
        uint256 word = escrow.recordOf(id);
        assertEq(uint8(word), uint8(IBountyTypes.Status.Funded));
        assertEq(uint40(word >> 8), t);
        assertEq(word >> 49, uint256(keccak256(abi.encode(b))) >> 49);
        assertEq((word >> 48) & 1, 0);
    }
}

/// @dev Receiver whose receive() re-enters the escrow (slot 0 holds the escrow address after etch).
contract ReenteringReceiver {
    BountyEscrow internal target;

    constructor(BountyEscrow t) {
        target = t;
    }

    receive() external payable {
        target.withdraw(address(0));
    }
}
