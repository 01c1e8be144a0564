// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {BountyEscrow} from "../src/BountyEscrow.sol";
import {EvaluatorPanel, IPanelEscrow} from "../src/EvaluatorPanel.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {IStakeRegistry} from "../src/interfaces/IStakeRegistry.sol";
import {EthRejecter} from "./mocks/EthRejecter.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";
import {MockERC20} from "./mocks/MockERC20.sol";
import {PullLedger} from "../src/utils/PullLedger.sol";

/// @notice Unit, lifecycle and fuzz tests of EvaluatorPanel against a real BountyEscrow.
contract EvaluatorPanelTest is Test {
    uint16 internal constant FEE_BPS = 250;
    uint256 internal constant BOND = 0.01 ether;
    uint16 internal constant SLASH_BPS = 5_000;
    uint128 internal constant AMOUNT = 10 ether;
    uint128 internal constant PRICE = 8 ether;
    uint128 internal constant FEE = 0.1 ether;
    uint256 internal constant N_KEYS = 16;
    bytes4 internal constant MAGIC = 0x1626ba7e;
    bytes4 internal constant INVALID = 0xffffffff;
    bytes32 internal constant RESULT = keccak256("result");

    BountyEscrow internal escrow;
    EvaluatorPanel internal panel;
    MockERC20 internal token;

    address internal owner = makeAddr("owner");
    address internal feeTo = makeAddr("feeTo");
    address internal arbiter = makeAddr("arbiter");
    address internal poster = makeAddr("poster");
    address internal stranger = makeAddr("stranger");
    address internal provider;
    uint256 internal providerKey;

    /// @dev 16 member keys, sorted by address ascending.
    address[] internal mAddr;
    uint256[] internal mKey;

    uint256 internal saltCounter;
    uint256 internal bidNonce;

    function setUp() public {
        vm.warp(1_700_000_000);
        (provider, providerKey) = makeAddrAndKey("provider");
        escrow = new BountyEscrow(owner, feeTo, FEE_BPS, IStakeRegistry(address(0)), BOND, SLASH_BPS);
        panel = new EvaluatorPanel(IPanelEscrow(address(escrow)));
        token = new MockERC20("Mock", "MCK");

        for (uint256 i; i < N_KEYS; ++i) {
            (address a, uint256 k) = makeAddrAndKey(string.concat("member", vm.toString(i)));
            mAddr.push(a);
            mKey.push(k);
        }
        // insertion sort by address
        for (uint256 i = 1; i < N_KEYS; ++i) {
            for (uint256 j = i; j > 0 && mAddr[j - 1] > mAddr[j]; --j) {
                (mAddr[j - 1], mAddr[j]) = (mAddr[j], mAddr[j - 1]);
                (mKey[j - 1], mKey[j]) = (mKey[j], mKey[j - 1]);
            }
        }

        vm.deal(poster, 1_000 ether);
        vm.deal(provider, 10 ether);
        token.mint(poster, 1_000_000e18);
        vm.startPrank(poster);
        token.approve(address(escrow), type(uint256).max);
        token.approve(address(panel), type(uint256).max);
        vm.stopPrank();
    }

    // =========================================================================================
    // Helpers
    // =========================================================================================

    function _salt() internal returns (bytes32) {
        return bytes32(++saltCounter);
    }

    /// @dev The first `n` (sorted) member addresses.
    function _members(uint256 n) internal view returns (address[] memory m) {
        m = new address[](n);
        for (uint256 i; i < n; ++i) {
            m[i] = mAddr[i];
        }
    }

    function _open(bytes32 salt, uint256 n, uint8 quorum, address tkn, uint128 fee)
        internal
        returns (uint256 id)
    {
        uint256 value = tkn == address(0) ? uint256(fee) * quorum : 0;
        vm.prank(poster);
        id = panel.openPanel{value: value}(salt, _members(n), quorum, tkn, fee);
    }

    function _terms(address tkn) internal view returns (IBountyTypes.Bounty memory b) {
        b.poster = poster;
        b.token = tkn;
        b.amount = AMOUNT;
        b.evaluator = address(panel);
        b.deadline = uint64(block.timestamp + 7 days);
        b.reviewWindow = 1 days;
        b.feeBps = escrow.feeBps();
        b.mode = IBountyTypes.Mode.Auction;
        b.specHash = keccak256("spec");
    }

    /// @dev Built field by field so that fields added to `Bid` default to zero.
    function _signedBid(uint256 id, IBountyTypes.Bounty memory b)
        internal
        returns (IBountyTypes.Bid memory bid, bytes memory sig)
    {
        bid.bountyId = id;
        bid.termsHash = escrow.hashBounty(b);
        bid.bidder = provider;
        bid.amount = PRICE;
        bid.deadline = uint64(block.timestamp + 1 days);
        bid.nonce = ++bidNonce;
        sig = _sign(providerKey, escrow.hashBid(bid));
    }

    /// @dev Posts, funds and awards `b` (with `salt`) to `provider`; updates `b` to the awarded record.
    function _postAwarded(bytes32 salt, IBountyTypes.Bounty memory b) internal returns (uint256 id) {
        id = escrow.bountyIdOf(poster, salt);
        (IBountyTypes.Bid memory bid, bytes memory sig) = _signedBid(id, b);
        vm.prank(poster);
        escrow.postFundAndAward{value: b.token == address(0) ? b.amount : 0}(salt, b, bid, sig);
        b.provider = provider;
        b.price = PRICE;
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _digest(uint256 id, bytes32 resultHash, uint8 verdict) internal view returns (bytes32) {
        return escrow.hashAttestation(
            IBountyTypes.Attestation({
                bountyId: id, provider: provider, resultHash: resultHash, verdict: verdict
            })
        );
    }

    /// @dev Signatures of the members at `idx` (indices into the sorted key list), in that order.
    function _memberSigs(uint256[] memory idx, bytes32 digest) internal view returns (bytes[] memory sigs) {
        sigs = new bytes[](idx.length);
        for (uint256 i; i < idx.length; ++i) {
            sigs[i] = _sign(mKey[idx[i]], digest);
        }
    }

    function _idx(uint256 a) internal pure returns (uint256[] memory r) {
        r = new uint256[](1);
        r[0] = a;
    }

    function _idx(uint256 a, uint256 b) internal pure returns (uint256[] memory r) {
        r = new uint256[](2);
        (r[0], r[1]) = (a, b);
    }

    function _idx(uint256 a, uint256 b, uint256 c) internal pure returns (uint256[] memory r) {
        r = new uint256[](3);
        (r[0], r[1], r[2]) = (a, b, c);
    }

    function _panelSig(uint256 id, bytes32 resultHash, uint8 verdict, bytes[] memory sigs)
        internal
        view
        returns (bytes memory)
    {
        return abi.encode(id, provider, resultHash, verdict, sigs);
    }

    /// @dev Provider submits RESULT with the panel signature of the members at `idx`.
    function _submitAndAttest(uint256 id, IBountyTypes.Bounty memory b, uint8 verdict, uint256[] memory idx)
        internal
        returns (bytes[] memory sigs)
    {
        sigs = _memberSigs(idx, _digest(id, RESULT, verdict));
        vm.prank(provider);
        escrow.submitAndAttest(id, b, RESULT, verdict, _panelSig(id, RESULT, verdict, sigs));
        b.resultHash = RESULT;
    }

    function _status(uint256 id) internal view returns (IBountyTypes.Status s) {
        (s,) = escrow.statusOf(id);
    }

    function _bal(address tkn, address a) internal view returns (uint256) {
        return tkn == address(0) ? a.balance : token.balanceOf(a);
    }

    function _addrs(address a, address b) internal pure returns (address[] memory r) {
        r = new address[](2);
        (r[0], r[1]) = (a, b);
    }

    // =========================================================================================
    // Construction
    // =========================================================================================

    function test_Constructor() public view {
        assertEq(address(panel.escrow()), address(escrow));
        assertEq(panel.MAX_MEMBERS(), 16);
    }

    function test_RevertWhen_ConstructorZeroEscrow() public {
        vm.expectRevert(PullLedger.ZeroAddress.selector);
        new EvaluatorPanel(IPanelEscrow(address(0)));
    }

    // =========================================================================================
    // openPanel
    // =========================================================================================

    function test_OpenPanel_Eth() public {
        bytes32 salt = _salt();
        uint256 expectedId = escrow.bountyIdOf(poster, salt);
        address[] memory m = _members(3);
        uint256 before = poster.balance;

        vm.expectEmit(address(panel));
        emit EvaluatorPanel.PanelOpened(expectedId, poster, m, 2, address(0), FEE);
        uint256 id = _open(salt, 3, 2, address(0), FEE);

        assertEq(id, expectedId);
        assertEq(address(panel).balance, 2 * FEE);
        assertEq(poster.balance, before - 2 * FEE);
        (address p, address[] memory members, uint8 q, address tkn, uint128 fee, bool settled) =
            panel.panelOf(id);
        assertEq(p, poster);
        assertEq(members, m);
        assertEq(q, 2);
        assertEq(tkn, address(0));
        assertEq(fee, FEE);
        assertFalse(settled);
        assertEq(uint8(panel.stateOf(id)), uint8(EvaluatorPanel.PanelState.Active));
        assertTrue(panel.isMember(id, m[1]));
        assertFalse(panel.isMember(id, mAddr[3]));
    }

    function test_OpenPanel_Erc20() public {
        uint256 before = token.balanceOf(poster);
        uint256 id = _open(_salt(), 3, 3, address(token), 5e18);
        assertEq(token.balanceOf(address(panel)), 15e18);
        assertEq(token.balanceOf(poster), before - 15e18);
        (,,, address tkn, uint128 fee,) = panel.panelOf(id);
        assertEq(tkn, address(token));
        assertEq(fee, 5e18);
    }

    function test_OpenPanel_ZeroFee() public {
        uint256 id = _open(_salt(), 1, 1, address(0), 0);
        assertEq(address(panel).balance, 0);
        (address p,,,,,) = panel.panelOf(id);
        assertEq(p, poster);
        // ERC-20 with a zero fee does not touch the token.
        _open(_salt(), 1, 1, address(token), 0);
        assertEq(token.balanceOf(address(panel)), 0);
    }

    function test_OpenPanel_SortsMembers() public {
        address[] memory m = new address[](3);
        (m[0], m[1], m[2]) = (mAddr[2], mAddr[0], mAddr[1]);
        vm.prank(poster);
        uint256 id = panel.openPanel(_salt(), m, 1, address(0), 0);
        (, address[] memory stored,,,,) = panel.panelOf(id);
        assertEq(stored, _members(3));
    }

    function test_RevertWhen_OpenPanelTwice() public {
        bytes32 salt = _salt();
        _open(salt, 3, 2, address(0), FEE);
        vm.expectRevert(EvaluatorPanel.PanelExists.selector);
        _open(salt, 2, 1, address(0), FEE);
    }

    function test_RevertWhen_OpenPanelBountyAlreadyPosted() public {
        bytes32 salt = _salt();
        IBountyTypes.Bounty memory b = _terms(address(0));
        vm.prank(poster);
        escrow.post(salt, b);
        vm.expectRevert(EvaluatorPanel.BountyAlreadyPosted.selector);
        _open(salt, 3, 2, address(0), FEE);
    }

    function test_RevertWhen_OpenPanelZeroQuorum() public {
        bytes32 salt = _salt();
        vm.prank(poster);
        vm.expectRevert(EvaluatorPanel.InvalidQuorum.selector);
        panel.openPanel(salt, _members(3), 0, address(0), 0);
    }

    function test_RevertWhen_OpenPanelQuorumAboveMembers() public {
        bytes32 salt = _salt();
        vm.prank(poster);
        vm.expectRevert(EvaluatorPanel.InvalidQuorum.selector);
        panel.openPanel(salt, _members(3), 4, address(0), 0);
    }

    function test_RevertWhen_OpenPanelDuplicateMember() public {
        address[] memory m = new address[](3);
        (m[0], m[1], m[2]) = (mAddr[0], mAddr[1], mAddr[0]);
        bytes32 salt = _salt();
        vm.prank(poster);
        vm.expectRevert(abi.encodeWithSelector(EvaluatorPanel.DuplicateMember.selector, mAddr[0]));
        panel.openPanel(salt, m, 2, address(0), 0);
    }

    function test_RevertWhen_OpenPanelZeroMember() public {
        address[] memory m = new address[](2);
        m[0] = mAddr[0];
        bytes32 salt = _salt();
        vm.prank(poster);
        vm.expectRevert(EvaluatorPanel.ZeroMember.selector);
        panel.openPanel(salt, m, 1, address(0), 0);
    }

    function test_RevertWhen_OpenPanelNoMembers() public {
        bytes32 salt = _salt();
        vm.prank(poster);
        vm.expectRevert(EvaluatorPanel.InvalidMemberCount.selector);
        panel.openPanel(salt, new address[](0), 1, address(0), 0);
    }

    function test_RevertWhen_OpenPanelTooManyMembers() public {
        address[] memory m = new address[](17);
        for (uint256 i; i < 17; ++i) {
            m[i] = vm.addr(i + 1);
        }
        bytes32 salt = _salt();
        vm.prank(poster);
        vm.expectRevert(EvaluatorPanel.InvalidMemberCount.selector);
        panel.openPanel(salt, m, 1, address(0), 0);
    }

    function test_OpenPanel_SixteenMembers() public {
        uint256 id = _open(_salt(), 16, 16, address(0), FEE);
        (, address[] memory stored, uint8 q,,,) = panel.panelOf(id);
        assertEq(stored.length, 16);
        assertEq(q, 16);
    }

    function test_RevertWhen_OpenPanelWrongEthValue() public {
        bytes32 salt = _salt();
        address[] memory m = _members(3);
        vm.startPrank(poster);
        vm.expectRevert(PullLedger.InvalidValue.selector);
        panel.openPanel{value: FEE}(salt, m, 2, address(0), FEE); // needs 2 * FEE
        vm.expectRevert(PullLedger.InvalidValue.selector);
        panel.openPanel{value: 3 * FEE}(salt, m, 2, address(0), FEE);
        vm.expectRevert(PullLedger.InvalidValue.selector);
        panel.openPanel{value: 1}(salt, m, 2, address(0), 0);
        vm.expectRevert(PullLedger.InvalidValue.selector);
        panel.openPanel{value: 1}(salt, m, 2, address(token), FEE); // ERC-20 fee with ETH
        vm.stopPrank();
    }

    function test_RevertWhen_OpenPanelFeeOnTransferToken() public {
        FeeOnTransferToken fot = new FeeOnTransferToken();
        fot.mint(poster, 100e18);
        vm.prank(poster);
        fot.approve(address(panel), type(uint256).max);
        bytes32 salt = _salt();
        address[] memory m = _members(2);
        vm.prank(poster);
        vm.expectRevert(PullLedger.FeeOnTransferToken.selector);
        panel.openPanel(salt, m, 2, address(fot), 1e18);
    }

    // =========================================================================================
    // cancelPanel
    // =========================================================================================

    /// @dev Issue 18: a poster collects bids for a panel-judged bounty and cancels the panel
    ///      before posting (fee budget back). It could then award, take the result and be
    ///      refunded after the review window while nobody can accept. The panel cannot be
    ///      cancelled while the id can still be awarded, so it judges the award.
    function test_RevertWhen_CancelPanelAfterBidsSignedBeforePosting() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        (IBountyTypes.Bid memory bid, bytes memory sig) = _signedBid(id, b);
        vm.prank(poster);
        vm.expectRevert(
            abi.encodeWithSelector(EvaluatorPanel.BountyNotClosed.selector, IBountyTypes.Status.None)
        );
        panel.cancelPanel(salt);

        vm.prank(poster);
        escrow.postFundAndAward{value: b.amount}(salt, b, bid, sig);
        b.provider = provider;
        b.price = PRICE;
        vm.prank(poster);
        vm.expectRevert(
            abi.encodeWithSelector(EvaluatorPanel.BountyNotClosed.selector, IBountyTypes.Status.Awarded)
        );
        panel.cancelPanel(salt);
        uint256 before = provider.balance;
        _submitAndAttest(id, b, 1, _idx(0, 1));
        assertEq(provider.balance - before, PRICE - uint256(PRICE) * FEE_BPS / 10_000);
    }

    /// @dev Burns the id of `salt` in the escrow (post + cancel, no funds): the panel can go.
    function _burn(bytes32 salt) internal {
        IBountyTypes.Bounty memory b = _terms(address(0));
        vm.startPrank(poster);
        escrow.post(salt, b);
        escrow.cancel(escrow.bountyIdOf(poster, salt), b);
        vm.stopPrank();
    }

    function test_CancelPanel_AfterTheBountyExpiredUnjudged() public {
        bytes32 salt = _salt();
        _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        vm.prank(poster);
        uint256 id = escrow.post(salt, b);
        vm.warp(b.deadline + 1);
        escrow.refundExpired(id, b);
        uint256 before = poster.balance;
        vm.prank(poster);
        panel.cancelPanel(salt);
        assertEq(poster.balance, before + 2 * FEE);
    }

    function test_CancelPanel_RefundsAndBurnsId() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        _burn(salt);
        uint256 before = poster.balance;

        vm.expectEmit(address(panel));
        emit EvaluatorPanel.PanelCancelled(id, poster, 2 * FEE);
        vm.prank(poster);
        panel.cancelPanel(salt);

        assertEq(poster.balance, before + 2 * FEE);
        assertEq(address(panel).balance, 0);
        (,,,,, bool settled) = panel.panelOf(id);
        assertTrue(settled);
        assertEq(uint8(panel.stateOf(id)), uint8(EvaluatorPanel.PanelState.Cancelled));

        // The id is burnt and a cancelled panel validates nothing.
        vm.expectRevert(EvaluatorPanel.PanelExists.selector);
        _open(salt, 3, 2, address(0), FEE);
        bytes32 d = _digest(id, RESULT, 1);
        bytes[] memory sigs = _memberSigs(_idx(0, 1), d);
        assertEq(panel.isValidSignature(d, _panelSig(id, RESULT, 1, sigs)), INVALID);

        vm.prank(poster);
        vm.expectRevert(EvaluatorPanel.AlreadySettled.selector);
        panel.cancelPanel(salt);
    }

    function test_CancelPanel_Erc20() public {
        bytes32 salt = _salt();
        _open(salt, 2, 2, address(token), 3e18);
        _burn(salt);
        uint256 before = token.balanceOf(poster);
        vm.prank(poster);
        panel.cancelPanel(salt);
        assertEq(token.balanceOf(poster), before + 6e18);
    }

    function test_RevertWhen_CancelPanelNone() public {
        bytes32 salt = _salt();
        _open(salt, 3, 2, address(0), FEE);
        // Another caller derives another id.
        vm.prank(stranger);
        vm.expectRevert(EvaluatorPanel.NoPanel.selector);
        panel.cancelPanel(salt);
    }

    function test_RevertWhen_CancelPanelAfterPosting() public {
        bytes32 salt = _salt();
        _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        vm.prank(poster);
        escrow.post(salt, b);
        vm.prank(poster);
        vm.expectRevert(
            abi.encodeWithSelector(EvaluatorPanel.BountyNotClosed.selector, IBountyTypes.Status.Open)
        );
        panel.cancelPanel(salt);
    }

    // =========================================================================================
    // Lifecycles through the escrow
    // =========================================================================================

    /// @dev Quorum mode: 2-of-3 accept → Completed; settleFees pays exactly the two signers.
    function test_Lifecycle_TwoOfThreeAccept() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        assertEq(_postAwarded(salt, b), id);

        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0, 2));
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
        uint256 fee = uint256(PRICE) * FEE_BPS / 10_000;
        assertEq(provider.balance, 10 ether + PRICE - fee);

        uint256 posterBefore = poster.balance;
        vm.expectEmit(address(panel));
        emit EvaluatorPanel.FeesSettled(id, 1, _addrs(mAddr[0], mAddr[2]), FEE, 0);
        vm.prank(stranger);
        panel.settleFees(id, b, 1, sigs);

        assertEq(mAddr[0].balance, FEE);
        assertEq(mAddr[1].balance, 0);
        assertEq(mAddr[2].balance, FEE);
        assertEq(poster.balance, posterBefore); // whole budget spent
        assertEq(address(panel).balance, 0);
        (,,,,, bool settled) = panel.panelOf(id);
        assertTrue(settled);
        assertEq(uint8(panel.stateOf(id)), uint8(EvaluatorPanel.PanelState.Settled));
    }

    /// @dev With three signatures on a 2-of-3 panel only the first two valid signers are paid.
    function test_SettleFees_PaysAtMostQuorum() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0, 1, 2));
        panel.settleFees(id, b, 1, sigs);
        assertEq(mAddr[0].balance, FEE);
        assertEq(mAddr[1].balance, FEE);
        assertEq(mAddr[2].balance, 0);
    }

    /// @dev Evaluator mode: a 1-of-1 panel, ERC-20 bounty and fee.
    function test_Lifecycle_EvaluatorModeErc20() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 1, 1, address(token), 7e18);
        IBountyTypes.Bounty memory b = _terms(address(token));
        _postAwarded(salt, b);

        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0));
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));

        uint256 posterBefore = token.balanceOf(poster);
        panel.settleFees(id, b, 1, sigs);
        assertEq(token.balanceOf(mAddr[0]), 7e18);
        assertEq(token.balanceOf(poster), posterBefore);
        assertEq(token.balanceOf(address(panel)), 0);
    }

    /// @dev Attest (after a separate submit) also goes through the panel's ERC-1271.
    function test_Lifecycle_SubmitThenAttest() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        vm.prank(provider);
        escrow.submit(id, b, RESULT);
        b.resultHash = RESULT;
        bytes[] memory sigs = _memberSigs(_idx(1, 2), _digest(id, RESULT, 1));
        vm.prank(stranger);
        escrow.attest(id, b, 1, _panelSig(id, RESULT, 1, sigs));
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
        panel.settleFees(id, b, 1, sigs);
        assertEq(mAddr[1].balance, FEE);
        assertEq(mAddr[2].balance, FEE);
    }

    /// @dev Rejection without arbiter → Refunded; the rejecting members are paid.
    function test_Lifecycle_RejectRefunded() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        uint256 posterBefore = poster.balance;

        bytes[] memory sigs = _submitAndAttest(id, b, 2, _idx(1, 2));
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Refunded));
        assertEq(poster.balance, posterBefore + AMOUNT);

        // The verdict must match the status.
        vm.expectRevert(EvaluatorPanel.InvalidVerdict.selector);
        panel.settleFees(id, b, 1, sigs);

        panel.settleFees(id, b, 2, sigs);
        assertEq(mAddr[0].balance, 0);
        assertEq(mAddr[1].balance, FEE);
        assertEq(mAddr[2].balance, FEE);
    }

    function test_RevertWhen_SettleCompletedWithAcceptVerdict2() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0, 1));
        vm.expectRevert(EvaluatorPanel.InvalidVerdict.selector);
        panel.settleFees(id, b, 2, sigs);
    }

    /// @dev Rejection with arbiter, provider disputes, arbiter rules → Resolved; either verdict.
    function test_Lifecycle_RejectDisputedResolved() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        b.arbiter = arbiter;
        b.challengeWindow = 2 days;
        _postAwarded(salt, b);

        bytes[] memory sigs = _submitAndAttest(id, b, 2, _idx(0, 1));
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Rejected));
        // Rejected is not terminal.
        vm.expectRevert(EvaluatorPanel.NotTerminal.selector);
        panel.settleFees(id, b, 2, sigs);

        vm.prank(provider);
        escrow.dispute{value: BOND}(id, b);
        vm.expectRevert(EvaluatorPanel.NotTerminal.selector);
        panel.settleFees(id, b, 2, sigs);

        vm.prank(arbiter);
        escrow.resolve(id, b, 6_000);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Resolved));

        panel.settleFees(id, b, 2, sigs);
        assertEq(mAddr[0].balance, FEE);
        assertEq(mAddr[1].balance, FEE);
    }

    /// @dev Resolved after a dispute raised before any verdict: partial settlement waits for the delay.
    function test_Resolved_PartialSettlementAfterDelay() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        b.arbiter = arbiter;
        b.challengeWindow = 2 days;
        _postAwarded(salt, b);
        vm.prank(provider);
        escrow.submit(id, b, RESULT);
        b.resultHash = RESULT;
        vm.prank(poster);
        escrow.dispute{value: BOND}(id, b);
        vm.prank(arbiter);
        escrow.resolve(id, b, 10_000);

        // One member signed acceptance; the quorum was never reached.
        bytes[] memory sigs = _memberSigs(_idx(2), _digest(id, RESULT, 1));
        vm.expectRevert(EvaluatorPanel.TooEarly.selector);
        panel.settleFees(id, b, 1, sigs);

        vm.warp(block.timestamp + panel.PARTIAL_SETTLE_DELAY() + 1);
        uint256 posterBefore = poster.balance;
        address[] memory paid = new address[](1);
        paid[0] = mAddr[2];
        vm.expectEmit(address(panel));
        emit EvaluatorPanel.FeesSettled(id, 1, paid, FEE, FEE);
        panel.settleFees(id, b, 1, sigs);
        assertEq(mAddr[2].balance, FEE);
        assertEq(poster.balance, posterBefore + FEE);
    }

    function test_RevertWhen_SettleCompletedBelowQuorum() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0, 1));

        // The poster tries to keep the budget by settling without the signatures.
        vm.prank(poster);
        vm.expectRevert(abi.encodeWithSelector(EvaluatorPanel.InsufficientSignatures.selector, 0, 2));
        panel.settleFees(id, b, 1, new bytes[](0));

        bytes[] memory one = new bytes[](1);
        one[0] = sigs[1];
        vm.expectRevert(abi.encodeWithSelector(EvaluatorPanel.InsufficientSignatures.selector, 1, 2));
        panel.settleFees(id, b, 1, one);
    }

    function test_RevertWhen_SettleUnsortedSigners() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0, 1));
        (sigs[0], sigs[1]) = (sigs[1], sigs[0]);
        vm.expectRevert(EvaluatorPanel.SignersNotSorted.selector);
        panel.settleFees(id, b, 1, sigs);
    }

    // =========================================================================================
    // Rejected attestations
    // =========================================================================================

    function _awardedPanel(uint256 n, uint8 quorum)
        internal
        returns (uint256 id, IBountyTypes.Bounty memory b)
    {
        bytes32 salt = _salt();
        id = _open(salt, n, quorum, address(0), FEE);
        b = _terms(address(0));
        _postAwarded(salt, b);
    }

    function _expectAttestRejected(uint256 id, IBountyTypes.Bounty memory b, bytes memory sig) internal {
        vm.prank(provider);
        vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        escrow.submitAndAttest(id, b, RESULT, 1, sig);
    }

    function test_RevertWhen_InsufficientSignatures() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _awardedPanel(2, 2);
        bytes32 d = _digest(id, RESULT, 1);
        bytes memory sig = _panelSig(id, RESULT, 1, _memberSigs(_idx(1), d));
        assertEq(panel.isValidSignature(d, sig), INVALID);
        _expectAttestRejected(id, b, sig);
    }

    function test_RevertWhen_NonMemberSignature() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _awardedPanel(2, 2);
        bytes32 d = _digest(id, RESULT, 1);
        // mAddr[3] is not a member of a 2-member panel.
        bytes memory sig = _panelSig(id, RESULT, 1, _memberSigs(_idx(0, 3), d));
        assertEq(panel.isValidSignature(d, sig), INVALID);
        _expectAttestRejected(id, b, sig);
        // The provider's own signature does not count either.
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = _sign(mKey[0], d);
        sigs[1] = _sign(providerKey, d);
        if (provider < mAddr[0]) (sigs[0], sigs[1]) = (sigs[1], sigs[0]);
        _expectAttestRejected(id, b, _panelSig(id, RESULT, 1, sigs));
    }

    function test_RevertWhen_UnsortedSigners() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _awardedPanel(3, 2);
        bytes32 d = _digest(id, RESULT, 1);
        bytes memory sig = _panelSig(id, RESULT, 1, _memberSigs(_idx(2, 0), d));
        assertEq(panel.isValidSignature(d, sig), INVALID);
        _expectAttestRejected(id, b, sig);
        // Out of order is fatal even when a valid sorted pair follows.
        sig = _panelSig(id, RESULT, 1, _memberSigs(_idx4(1, 0, 1, 2), d));
        assertEq(panel.isValidSignature(d, sig), INVALID);
    }

    function test_RevertWhen_DuplicateSigner() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _awardedPanel(3, 2);
        bytes32 d = _digest(id, RESULT, 1);
        bytes memory sig = _panelSig(id, RESULT, 1, _memberSigs(_idx(1, 1), d));
        assertEq(panel.isValidSignature(d, sig), INVALID);
        _expectAttestRejected(id, b, sig);
        // A duplicate is fatal even when enough distinct members sign after it.
        sig = _panelSig(id, RESULT, 1, _memberSigs(_idx4(0, 0, 1, 2), d));
        assertEq(panel.isValidSignature(d, sig), INVALID);
        _expectAttestRejected(id, b, sig);
        // Sanity: the same signatures without the duplicate pass.
        assertEq(panel.isValidSignature(d, _panelSig(id, RESULT, 1, _memberSigs(_idx(0, 1, 2), d))), MAGIC);
    }

    function _idx4(uint256 a, uint256 b, uint256 c, uint256 e) internal pure returns (uint256[] memory r) {
        r = new uint256[](4);
        (r[0], r[1], r[2], r[3]) = (a, b, c, e);
    }

    /// @dev The provider registers its own 1-of-1 panel for some other id and signs the digest of
    ///      the bounty it works on: encoding that other id must not let its panel judge this bounty.
    function test_RevertWhen_SignatureNamesAnotherPanel() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _awardedPanel(2, 2);
        address[] memory self = new address[](1);
        self[0] = provider;
        vm.prank(provider);
        uint256 own = panel.openPanel(keccak256("own"), self, 1, address(0), 0);

        bytes32 d = _digest(id, RESULT, 1);
        bytes[] memory sigs = new bytes[](1);
        sigs[0] = _sign(providerKey, d);
        bytes memory sig = _panelSig(own, RESULT, 1, sigs);
        assertEq(panel.isValidSignature(d, sig), INVALID);
        _expectAttestRejected(id, b, sig);
    }

    /// @dev Signatures valid for another bounty's panel cannot settle this bounty.
    function test_RevertWhen_AttestationForAnotherBounty() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _awardedPanel(2, 2);
        bytes32 saltOther = _salt();
        vm.prank(poster);
        uint256 other = panel.openPanel(saltOther, _members(2), 2, address(0), 0);

        bytes32 dOther = _digest(other, RESULT, 1);
        bytes memory sigOther = _panelSig(other, RESULT, 1, _memberSigs(_idx(0, 1), dOther));
        assertEq(panel.isValidSignature(dOther, sigOther), MAGIC); // valid for its own bounty
        assertEq(panel.isValidSignature(_digest(id, RESULT, 1), sigOther), INVALID);
        _expectAttestRejected(id, b, sigOther);

        // Same bounty, but the member signatures are over the other verdict.
        bytes32 dReject = _digest(id, RESULT, 2);
        bytes memory wrongVerdict = _panelSig(id, RESULT, 1, _memberSigs(_idx(0, 1), dReject));
        _expectAttestRejected(id, b, wrongVerdict);
    }

    function test_IsValidSignature_ShortMemberSigReturnsInvalid() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        bytes32 d = _digest(id, RESULT, 1);
        bytes[] memory sigs = _memberSigs(_idx(0, 1), d);
        bytes memory full = sigs[1];
        bytes memory short = new bytes(64);
        for (uint256 i; i < 64; ++i) {
            short[i] = full[i];
        }
        sigs[1] = short;
        assertEq(panel.isValidSignature(d, _panelSig(id, RESULT, 1, sigs)), INVALID);

        // Garbage of the right length (v = 0) is skipped as well.
        sigs[1] = new bytes(65);
        assertEq(panel.isValidSignature(d, _panelSig(id, RESULT, 1, sigs)), INVALID);

        // Unrecoverable signatures are skipped, not fatal: add two valid ones after it.
        bytes[] memory mixed = new bytes[](3);
        mixed[0] = short;
        bytes[] memory valid = _memberSigs(_idx(1, 2), d);
        (mixed[1], mixed[2]) = (valid[0], valid[1]);
        assertEq(panel.isValidSignature(d, _panelSig(id, RESULT, 1, mixed)), MAGIC);

        // No signatures at all.
        assertEq(panel.isValidSignature(d, _panelSig(id, RESULT, 1, new bytes[](0))), INVALID);
    }

    function test_IsValidSignature_UnknownPanel() public view {
        uint256 id = escrow.bountyIdOf(poster, keccak256("nope"));
        bytes32 d = _digest(id, RESULT, 1);
        bytes[] memory sigs = _memberSigs(_idx(0), d);
        assertEq(panel.isValidSignature(d, _panelSig(id, RESULT, 1, sigs)), INVALID);
    }

    function test_IsValidSignature_MalformedEncodingReverts() public {
        uint256 id = _open(_salt(), 1, 1, address(0), 0);
        bytes32 d = _digest(id, RESULT, 1);
        vm.expectRevert();
        panel.isValidSignature(d, hex"1234");
    }

    // =========================================================================================
    // settleFees: other statuses and guards
    // =========================================================================================

    function test_SettleFees_ExpiredRefundsAll() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        vm.prank(poster);
        escrow.postAndFund{value: AMOUNT}(salt, b);
        vm.warp(uint256(b.deadline) + 1);
        escrow.refundExpired(id, b);
        assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Expired));

        uint256 posterBefore = poster.balance;
        bytes[] memory sigs = _memberSigs(_idx(0, 1), _digest(id, bytes32(0), 1));
        vm.expectEmit(address(panel));
        emit EvaluatorPanel.FeesSettled(id, 0, new address[](0), FEE, 2 * FEE);
        vm.prank(stranger);
        panel.settleFees(id, b, 1, sigs); // signatures ignored
        assertEq(poster.balance, posterBefore + 2 * FEE);
        assertEq(mAddr[0].balance, 0);
        assertEq(address(panel).balance, 0);
    }

    function test_SettleFees_CancelledBountyRefundsAll() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 2, 1, address(token), 4e18);
        IBountyTypes.Bounty memory b = _terms(address(token));
        vm.startPrank(poster);
        escrow.postAndFund(salt, b);
        escrow.cancel(id, b);
        vm.stopPrank();
        uint256 before = token.balanceOf(poster);
        panel.settleFees(id, b, 1, new bytes[](0));
        assertEq(token.balanceOf(poster), before + 4e18);
    }

    /// @dev A bounty posted with another evaluator: the panel never judges, budget refunded at once.
    function test_SettleFees_OtherEvaluatorRefundsAll() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 2, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        b.evaluator = mAddr[0];
        _postAwarded(salt, b);
        uint256 before = poster.balance;
        bytes[] memory sigs = _memberSigs(_idx(0, 1), _digest(id, RESULT, 1));
        panel.settleFees(id, b, 1, sigs);
        assertEq(poster.balance, before + 2 * FEE);
        assertEq(mAddr[0].balance, 0);
    }

    function test_RevertWhen_SettleFeesTwice() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0, 1));
        panel.settleFees(id, b, 1, sigs);
        vm.expectRevert(EvaluatorPanel.AlreadySettled.selector);
        panel.settleFees(id, b, 1, sigs);
    }

    function test_RevertWhen_SettleFeesNotTerminal() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        vm.expectRevert(EvaluatorPanel.NotTerminal.selector);
        panel.settleFees(id, b, 1, new bytes[](0));

        vm.prank(provider);
        escrow.submit(id, b, RESULT);
        b.resultHash = RESULT;
        bytes[] memory sigs = _memberSigs(_idx(0, 1), _digest(id, RESULT, 1));
        vm.expectRevert(EvaluatorPanel.NotTerminal.selector);
        panel.settleFees(id, b, 1, sigs);
    }

    function test_RevertWhen_SettleFeesWrongRecord() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0, 1));
        b.resultHash = keccak256("other");
        vm.expectRevert(BountyEscrow.BountyMismatch.selector);
        panel.settleFees(id, b, 1, sigs);
    }

    function test_RevertWhen_SettleFeesNoPanel() public {
        IBountyTypes.Bounty memory b = _terms(address(0));
        vm.expectRevert(EvaluatorPanel.NoPanel.selector);
        panel.settleFees(123, b, 1, new bytes[](0));
    }

    function test_RevertWhen_SettleFeesCancelledPanel() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 1, 1, address(0), FEE);
        _burn(salt);
        vm.prank(poster);
        panel.cancelPanel(salt);
        IBountyTypes.Bounty memory b = _terms(address(0));
        vm.expectRevert(EvaluatorPanel.AlreadySettled.selector);
        panel.settleFees(id, b, 1, new bytes[](0));
    }

    // =========================================================================================
    // Push failures and the pull ledger
    // =========================================================================================

    function test_SettleFees_PushFailureCreditedAndWithdrawn() public {
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);
        bytes[] memory sigs = _submitAndAttest(id, b, 1, _idx(0, 1));

        // Member 0's address cannot receive ETH (e.g. an EIP-7702 account that rejects it).
        address rejecterCode = address(new EthRejecter());
        vm.etch(mAddr[0], rejecterCode.code);

        vm.expectEmit(address(panel));
        emit PullLedger.PayoutDeferred(address(0), mAddr[0], FEE);
        panel.settleFees(id, b, 1, sigs);
        assertEq(panel.withdrawable(address(0), mAddr[0]), FEE);
        assertEq(mAddr[0].balance, 0);
        assertEq(mAddr[1].balance, FEE);
        assertEq(address(panel).balance, FEE);

        // Still rejecting: withdraw reverts, withdrawTo another address works.
        vm.prank(mAddr[0]);
        vm.expectRevert(PullLedger.TransferFailed.selector);
        panel.withdraw(address(0));

        address sink = makeAddr("sink");
        vm.expectEmit(address(panel));
        emit PullLedger.Withdrawn(address(0), mAddr[0], sink, FEE);
        vm.prank(mAddr[0]);
        panel.withdrawTo(address(0), sink);
        assertEq(sink.balance, FEE);
        assertEq(panel.withdrawable(address(0), mAddr[0]), 0);
        assertEq(address(panel).balance, 0);

        vm.prank(mAddr[0]);
        vm.expectRevert(PullLedger.NothingToWithdraw.selector);
        panel.withdraw(address(0));
    }

    function test_CancelPanel_PushFailureThenWithdraw() public {
        EthRejecter rejecter = new EthRejecter();
        address rp = address(rejecter);
        vm.deal(rp, 1 ether);
        bytes32 salt = _salt();
        vm.prank(rp);
        uint256 id = panel.openPanel{value: 2 * FEE}(salt, _members(2), 2, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        b.poster = rp;
        vm.startPrank(rp);
        escrow.post(salt, b);
        escrow.cancel(id, b);
        panel.cancelPanel(salt);
        vm.stopPrank();
        assertEq(panel.withdrawable(address(0), rp), 2 * FEE);
        assertEq(uint8(panel.stateOf(id)), uint8(EvaluatorPanel.PanelState.Cancelled));

        // Once the account can receive ETH again it pulls.
        vm.etch(rp, "");
        uint256 before = rp.balance;
        vm.prank(rp);
        panel.withdraw(address(0));
        assertEq(rp.balance, before + 2 * FEE);
    }

    function test_RevertWhen_WithdrawToZero() public {
        vm.expectRevert(PullLedger.ZeroAddress.selector);
        panel.withdrawTo(address(0), address(0));
    }

    // =========================================================================================
    // Fuzz
    // =========================================================================================

    /// @dev Indices (into the sorted key list) of the bits set in `mask`, ascending.
    function _bits(uint256 mask) internal pure returns (uint256[] memory idx) {
        uint256 k;
        for (uint256 i; i < N_KEYS; ++i) {
            if ((mask >> i) & 1 != 0) ++k;
        }
        idx = new uint256[](k);
        uint256 c;
        for (uint256 i; i < N_KEYS; ++i) {
            if ((mask >> i) & 1 != 0) idx[c++] = i;
        }
    }

    function _addrsAt(uint256[] memory idx) internal view returns (address[] memory a) {
        a = new address[](idx.length);
        for (uint256 i; i < idx.length; ++i) {
            a[i] = mAddr[idx[i]];
        }
    }

    /// @dev k-of-n with an arbitrary panel (subset of the 16 keys) and an arbitrary set of signers
    ///      (members and non-members interleaved, sorted): valid iff at least `quorum` signers are
    ///      members.
    function testFuzz_QuorumThreshold(uint16 panelMask, uint16 signMask, uint8 qSeed) public {
        vm.assume(panelMask != 0);
        address[] memory m = _addrsAt(_bits(panelMask));
        uint8 quorum = uint8(bound(qSeed, 1, m.length));
        vm.prank(poster);
        uint256 id = panel.openPanel(_salt(), m, quorum, address(0), 0);
        bool enough = _bits(uint256(panelMask) & signMask).length >= quorum;
        assertEq(_panelCheck(id, _bits(signMask)), enough ? MAGIC : INVALID);
    }

    /// @dev isValidSignature for an accept of RESULT on `id` signed by the keys at `idx`.
    function _panelCheck(uint256 id, uint256[] memory idx) internal view returns (bytes4) {
        bytes32 d = _digest(id, RESULT, 1);
        return panel.isValidSignature(d, _panelSig(id, RESULT, 1, _memberSigs(idx, d)));
    }

    /// @dev Members given in any order are stored sorted; every member is recognised.
    function testFuzz_OpenPanelAnyOrder(uint256 seed, uint8 nSeed) public {
        uint256 n = bound(nSeed, 1, N_KEYS);
        address[] memory m = _members(n);
        for (uint256 i = n; i > 1; --i) {
            uint256 j = uint256(keccak256(abi.encode(seed, i))) % i;
            (m[i - 1], m[j]) = (m[j], m[i - 1]);
        }
        vm.prank(poster);
        uint256 id = panel.openPanel(_salt(), m, 1, address(0), 0);
        (, address[] memory stored,,,,) = panel.panelOf(id);
        assertEq(stored, _members(n));
        for (uint256 i; i < n; ++i) {
            assertTrue(panel.isMember(id, m[i]));
        }
    }

    /// @dev End to end through the escrow: a k-of-3 panel attestation settles iff k >= quorum.
    function testFuzz_EscrowAcceptsIffQuorum(uint8 qSeed, uint8 mask) public {
        uint8 quorum = uint8(bound(qSeed, 1, 3));
        mask = mask & 7;
        bytes32 salt = _salt();
        uint256 id = _open(salt, 3, quorum, address(0), FEE);
        IBountyTypes.Bounty memory b = _terms(address(0));
        _postAwarded(salt, b);

        uint256 k;
        uint256[] memory all = new uint256[](3);
        for (uint256 i; i < 3; ++i) {
            if ((uint256(mask) >> i) & 1 != 0) all[k++] = i;
        }
        uint256[] memory idx = new uint256[](k);
        for (uint256 i; i < k; ++i) {
            idx[i] = all[i];
        }
        bytes[] memory sigs = _memberSigs(idx, _digest(id, RESULT, 1));
        bytes memory sig = _panelSig(id, RESULT, 1, sigs);
        vm.prank(provider);
        if (k < quorum) vm.expectRevert(BountyEscrow.InvalidSignature.selector);
        escrow.submitAndAttest(id, b, RESULT, 1, sig);
        if (k >= quorum) {
            b.resultHash = RESULT;
            assertEq(uint8(_status(id)), uint8(IBountyTypes.Status.Completed));
            panel.settleFees(id, b, 1, sigs);
            assertEq(address(panel).balance, 0);
        }
    }
}
