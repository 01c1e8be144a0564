// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test, Vm} from "forge-std/Test.sol";
import {PaymentChannel, PaymentChannelErrors} from "../src/PaymentChannel.sol";
import {MockERC20} from "./mocks/MockERC20.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";
import {MockERC1271Wallet} from "./mocks/MockERC1271Wallet.sol";
import {EthRejecter} from "./mocks/EthRejecter.sol";

contract PaymentChannelTest is Test {
    event ChannelOpened(
        uint256 indexed channelId,
        address indexed payer,
        address indexed payee,
        address token,
        uint256 amount,
        uint32 challengePeriod
    );
    event ChannelDeposited(
        uint256 indexed channelId, address indexed from, uint256 amount, uint256 newDeposit
    );
    event VoucherRedeemed(
        uint256 indexed channelId, address indexed payee, uint256 cumulativeAmount, uint256 paid
    );
    event VoucherSkipped(uint256 indexed channelId, bytes4 reason);
    event CloseRequested(uint256 indexed channelId, uint256 closableAt);
    event ChannelClosed(uint256 indexed channelId, uint256 paidToPayee, uint256 refundedToPayer);

    uint32 internal constant CHALLENGE = 1 days;
    address internal constant ETH = address(0);

    PaymentChannel internal pc;
    MockERC20 internal token;

    uint256 internal payerKey = 0xA11CE;
    address internal payer;
    uint256 internal payer2Key = 0xB0B;
    address internal payer2;
    address internal payee = makeAddr("payee");
    address internal payee2 = makeAddr("payee2");
    address internal relayer = makeAddr("relayer");

    function setUp() public {
        pc = new PaymentChannel();
        token = new MockERC20("Mock", "MCK");
        payer = vm.addr(payerKey);
        payer2 = vm.addr(payer2Key);
        vm.deal(payer, 1000 ether);
        vm.deal(payer2, 1000 ether);
        token.mint(payer, 1_000_000 ether);
        token.mint(payer2, 1_000_000 ether);
        vm.prank(payer);
        token.approve(address(pc), type(uint256).max);
        vm.prank(payer2);
        token.approve(address(pc), type(uint256).max);
    }

    // ------------------------------------------------------------------ helpers

    function _openEth(address from, address to, uint128 amount) internal returns (uint256 id) {
        vm.prank(from);
        id = pc.open{value: amount}(to, ETH, amount, CHALLENGE);
    }

    function _openToken(address from, address to, uint128 amount) internal returns (uint256 id) {
        vm.prank(from);
        id = pc.open(to, address(token), amount, CHALLENGE);
    }

    function _voucher(uint256 id, address from, address to, uint256 cumulative)
        internal
        pure
        returns (PaymentChannel.Voucher memory v)
    {
        v = PaymentChannel.Voucher({channelId: id, payer: from, payee: to, cumulativeAmount: cumulative});
    }

    function _sign(uint256 key, PaymentChannel.Voucher memory v) internal view returns (bytes memory) {
        (uint8 sv, bytes32 r, bytes32 s) = vm.sign(key, pc.hashVoucher(v));
        return abi.encodePacked(r, s, sv);
    }

    function _signDigest(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 sv, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, sv);
    }

    /// @dev Independent EIP-712 digest for a given chain id and verifying contract.
    function _digest(PaymentChannel.Voucher memory v, uint256 chainId, address verifying)
        internal
        pure
        returns (bytes32)
    {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("ReefPaymentChannel"),
                keccak256("1"),
                chainId,
                verifying
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Voucher(uint256 channelId,address payer,address payee,uint256 cumulativeAmount)"),
                v.channelId,
                v.payer,
                v.payee,
                v.cumulativeAmount
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    function _redeem(uint256 key, uint256 id, address from, address to, uint256 cumulative)
        internal
        returns (uint256)
    {
        PaymentChannel.Voucher memory v = _voucher(id, from, to, cumulative);
        return pc.redeem(v, _sign(key, v));
    }

    // ------------------------------------------------------------------ open

    function test_Open_Eth() public {
        vm.expectEmit(address(pc));
        emit ChannelOpened(1, payer, payee, ETH, 5 ether, CHALLENGE);
        uint256 id = _openEth(payer, payee, 5 ether);
        assertEq(id, 1);
        assertEq(pc.lastChannelId(), 1);
        assertEq(address(pc).balance, 5 ether);
        PaymentChannel.Channel memory c = pc.channel(id);
        assertEq(c.payer, payer);
        assertEq(c.payee, payee);
        assertEq(c.token, ETH);
        assertEq(c.deposit, 5 ether);
        assertEq(c.redeemed, 0);
        assertEq(c.challengePeriod, CHALLENGE);
        assertEq(c.closeRequestedAt, 0);
        assertFalse(c.closed);
    }

    function test_Open_Erc20() public {
        uint256 id = _openToken(payer, payee, 100 ether);
        assertEq(id, 1);
        assertEq(token.balanceOf(address(pc)), 100 ether);
        assertEq(pc.channel(id).token, address(token));
    }

    function test_Open_IdsIncrement() public {
        assertEq(_openEth(payer, payee, 1 ether), 1);
        assertEq(_openToken(payer2, payee, 1 ether), 2);
    }

    function test_RevertWhen_OpenZeroPayee() public {
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.ZeroAddress.selector);
        pc.open{value: 1}(address(0), ETH, 1, CHALLENGE);
    }

    function test_RevertWhen_OpenZeroAmount() public {
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.ZeroAmount.selector);
        pc.open(payee, ETH, 0, CHALLENGE);
    }

    function test_RevertWhen_OpenAmountTooLarge() public {
        uint128 tooMuch = uint128(type(uint96).max) + 1;
        token.mint(payer, tooMuch);
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.AmountTooLarge.selector);
        pc.open(payee, address(token), tooMuch, CHALLENGE);
    }

    function test_RevertWhen_OpenZeroChallengePeriod() public {
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.InvalidChallengePeriod.selector);
        pc.open{value: 1}(payee, ETH, 1, 0);
    }

    function test_RevertWhen_OpenEthValueMismatch() public {
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.WrongMsgValue.selector);
        pc.open{value: 1 ether - 1}(payee, ETH, 1 ether, CHALLENGE);
    }

    function test_RevertWhen_OpenErc20WithValue() public {
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.WrongMsgValue.selector);
        pc.open{value: 1}(payee, address(token), 1 ether, CHALLENGE);
    }

    function test_RevertWhen_OpenFeeOnTransferToken() public {
        FeeOnTransferToken fot = new FeeOnTransferToken();
        fot.mint(payer, 100 ether);
        vm.startPrank(payer);
        fot.approve(address(pc), type(uint256).max);
        vm.expectRevert(PaymentChannel.FeeOnTransferToken.selector);
        pc.open(payee, address(fot), 100 ether, CHALLENGE);
        vm.stopPrank();
    }

    function test_RevertWhen_OpenTokenWithoutCode() public {
        vm.prank(payer);
        vm.expectRevert();
        pc.open(payee, makeAddr("noCode"), 1 ether, CHALLENGE);
    }

    // ------------------------------------------------------------------ deposit

    function test_Deposit_Eth() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.expectEmit(address(pc));
        emit ChannelDeposited(id, payer, 2 ether, 3 ether);
        vm.prank(payer);
        pc.deposit{value: 2 ether}(id, 2 ether);
        assertEq(pc.channel(id).deposit, 3 ether);
        assertEq(address(pc).balance, 3 ether);
    }

    function test_Deposit_Erc20ByThirdParty() public {
        uint256 id = _openToken(payer, payee, 1 ether);
        vm.prank(payer2);
        pc.deposit(id, 4 ether);
        assertEq(pc.channel(id).deposit, 5 ether);
        assertEq(token.balanceOf(address(pc)), 5 ether);
    }

    function test_Deposit_WhileCloseRequested() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.startPrank(payer);
        pc.requestClose(id);
        pc.deposit{value: 1 ether}(id, 1 ether);
        vm.stopPrank();
        assertEq(pc.channel(id).deposit, 2 ether);
    }

    function test_RevertWhen_DepositChannelNotFound() public {
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.ChannelNotFound.selector);
        pc.deposit{value: 1}(7, 1);
    }

    function test_RevertWhen_DepositChannelClosed() public {
        uint256 id = _closedChannel();
        vm.prank(payer);
        vm.expectRevert(PaymentChannelErrors.ChannelClosed.selector);
        pc.deposit{value: 1}(id, 1);
    }

    function test_RevertWhen_DepositZeroAmount() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.ZeroAmount.selector);
        pc.deposit(id, 0);
    }

    function test_RevertWhen_DepositOverflowsUint96() public {
        uint256 id = _openToken(payer, payee, 1);
        token.mint(payer, type(uint96).max);
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.AmountTooLarge.selector);
        pc.deposit(id, type(uint96).max);
    }

    function test_RevertWhen_DepositWrongMsgValue() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.WrongMsgValue.selector);
        pc.deposit{value: 1}(id, 2);
    }

    // ------------------------------------------------------------------ redeem

    function test_Redeem_PaysDeltaToPayee() public {
        uint256 id = _openEth(payer, payee, 10 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 3 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.expectEmit(address(pc));
        emit VoucherRedeemed(id, payee, 3 ether, 3 ether);
        vm.prank(relayer); // anyone may submit
        assertEq(pc.redeem(v, sig), 3 ether);
        assertEq(payee.balance, 3 ether);
        assertEq(relayer.balance, 0);

        // a later cumulative voucher pays only the difference
        assertEq(_redeem(payerKey, id, payer, payee, 7 ether), 4 ether);
        assertEq(payee.balance, 7 ether);
        assertEq(pc.channel(id).redeemed, 7 ether);
    }

    function test_Redeem_Erc20() public {
        uint256 id = _openToken(payer, payee, 10 ether);
        _redeem(payerKey, id, payer, payee, 10 ether);
        assertEq(token.balanceOf(payee), 10 ether);
        assertEq(token.balanceOf(address(pc)), 0);
    }

    function test_Redeem_Erc1271Payer() public {
        uint256 ownerKey = 0xC0FFEE;
        MockERC1271Wallet wallet = new MockERC1271Wallet(vm.addr(ownerKey));
        vm.deal(address(wallet), 5 ether);
        bytes memory data = abi.encodeCall(PaymentChannel.open, (payee, ETH, 5 ether, CHALLENGE));
        uint256 id = abi.decode(wallet.execute(address(pc), 5 ether, data), (uint256));

        PaymentChannel.Voucher memory v = _voucher(id, address(wallet), payee, 2 ether);
        pc.redeem(v, _sign(ownerKey, v));
        assertEq(payee.balance, 2 ether);
    }

    function test_RevertWhen_RedeemErc1271Rejects() public {
        uint256 ownerKey = 0xC0FFEE;
        MockERC1271Wallet wallet = new MockERC1271Wallet(vm.addr(ownerKey));
        vm.deal(address(wallet), 5 ether);
        bytes memory data = abi.encodeCall(PaymentChannel.open, (payee, ETH, 5 ether, CHALLENGE));
        uint256 id = abi.decode(wallet.execute(address(pc), 5 ether, data), (uint256));
        wallet.setAcceptSignatures(false);

        PaymentChannel.Voucher memory v = _voucher(id, address(wallet), payee, 2 ether);
        bytes memory sig = _sign(ownerKey, v);
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemReplayed() public {
        uint256 id = _openEth(payer, payee, 10 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 3 ether);
        bytes memory sig = _sign(payerKey, v);
        pc.redeem(v, sig);
        vm.expectRevert(PaymentChannel.NothingToRedeem.selector);
        pc.redeem(v, sig);
        assertEq(payee.balance, 3 ether);
    }

    function test_RevertWhen_RedeemOlderVoucher() public {
        uint256 id = _openEth(payer, payee, 10 ether);
        PaymentChannel.Voucher memory old = _voucher(id, payer, payee, 2 ether);
        bytes memory oldSig = _sign(payerKey, old);
        _redeem(payerKey, id, payer, payee, 5 ether);
        vm.expectRevert(PaymentChannel.NothingToRedeem.selector);
        pc.redeem(old, oldSig);
    }

    function test_RevertWhen_RedeemExceedsDeposit() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether + 1);
        bytes memory sig = _sign(payerKey, v);
        vm.expectRevert(PaymentChannel.ExceedsDeposit.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemWrongSigner() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether);
        bytes memory sig = _sign(payer2Key, v);
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemSignatureMalformed() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether);
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.redeem(v, hex"1234");
    }

    function test_RevertWhen_RedeemSignedForOtherChainId() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether);
        bytes memory sig = _signDigest(payerKey, _digest(v, block.chainid + 1, address(pc)));
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemAfterChainIdChanges() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.chainId(block.chainid + 7); // fork: the domain separator is rebuilt
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemSignedForOtherContract() public {
        PaymentChannel other = new PaymentChannel();
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether);
        bytes memory sig = _signDigest(payerKey, other.hashVoucher(v));
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemVoucherPayerMismatch() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer2, payee, 1 ether);
        bytes memory sig = _sign(payer2Key, v);
        vm.expectRevert(PaymentChannel.VoucherMismatch.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemVoucherPayeeMismatch() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee2, 1 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.expectRevert(PaymentChannel.VoucherMismatch.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemVoucherForOtherChannel() public {
        uint256 id1 = _openEth(payer, payee, 1 ether);
        uint256 id2 = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id1, payer, payee, 1 ether);
        bytes memory sig = _sign(payerKey, v);
        v.channelId = id2; // same payer/payee, different channel: the signature no longer matches
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemChannelNotFound() public {
        PaymentChannel.Voucher memory v = _voucher(42, payer, payee, 1);
        bytes memory sig = _sign(payerKey, v);
        vm.expectRevert(PaymentChannel.ChannelNotFound.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemChannelClosed() public {
        uint256 id = _closedChannel();
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.expectRevert(PaymentChannelErrors.ChannelClosed.selector);
        pc.redeem(v, sig);
    }

    function test_RevertWhen_RedeemPayeeRejectsEth() public {
        address rejecter = address(new EthRejecter());
        uint256 id = _openEth(payer, rejecter, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, rejecter, 1 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.expectRevert(PaymentChannel.EthTransferFailed.selector);
        pc.redeem(v, sig);
    }

    // ------------------------------------------------------------------ redeemBatch

    function test_RedeemBatch_ManyPayersOneTransfer() public {
        uint256 id1 = _openToken(payer, payee, 10 ether);
        uint256 id2 = _openToken(payer2, payee, 10 ether);
        PaymentChannel.Voucher[] memory vs = new PaymentChannel.Voucher[](3);
        bytes[] memory sigs = new bytes[](3);
        vs[0] = _voucher(id1, payer, payee, 1 ether);
        vs[1] = _voucher(id2, payer2, payee, 2 ether);
        vs[2] = _voucher(id1, payer, payee, 4 ether); // same channel again, higher cumulative
        sigs[0] = _sign(payerKey, vs[0]);
        sigs[1] = _sign(payer2Key, vs[1]);
        sigs[2] = _sign(payerKey, vs[2]);

        vm.recordLogs();
        vm.prank(relayer);
        uint256 total = pc.redeemBatch(vs, sigs);
        assertEq(total, 6 ether);
        assertEq(token.balanceOf(payee), 6 ether);
        assertEq(pc.channel(id1).redeemed, 4 ether);
        assertEq(pc.channel(id2).redeemed, 2 ether);
        assertEq(_countTransfers(vm.getRecordedLogs()), 1, "one aggregated transfer");
    }

    function test_RedeemBatch_RunsPerTokenAndPayee() public {
        uint256 a = _openToken(payer, payee, 10 ether);
        uint256 b = _openEth(payer, payee, 10 ether);
        uint256 c = _openToken(payer2, payee2, 10 ether);
        uint256 d = _openToken(payer2, payee, 10 ether);
        PaymentChannel.Voucher[] memory vs = new PaymentChannel.Voucher[](4);
        bytes[] memory sigs = new bytes[](4);
        vs[0] = _voucher(a, payer, payee, 1 ether);
        vs[1] = _voucher(b, payer, payee, 2 ether);
        vs[2] = _voucher(c, payer2, payee2, 3 ether);
        vs[3] = _voucher(d, payer2, payee, 4 ether);
        sigs[0] = _sign(payerKey, vs[0]);
        sigs[1] = _sign(payerKey, vs[1]);
        sigs[2] = _sign(payer2Key, vs[2]);
        sigs[3] = _sign(payer2Key, vs[3]);

        vm.recordLogs();
        pc.redeemBatch(vs, sigs);
        assertEq(token.balanceOf(payee), 5 ether);
        assertEq(payee.balance, 2 ether);
        assertEq(token.balanceOf(payee2), 3 ether);
        assertEq(_countTransfers(vm.getRecordedLogs()), 3, "token runs: a, c, d");
    }

    function test_RedeemBatch_SkipsInvalidVouchers() public {
        uint256 id1 = _openEth(payer, payee, 10 ether);
        uint256 id2 = _openEth(payer2, payee, 1 ether);
        PaymentChannel.Voucher[] memory vs = new PaymentChannel.Voucher[](5);
        bytes[] memory sigs = new bytes[](5);
        vs[0] = _voucher(id1, payer, payee, 1 ether); // ok
        vs[1] = _voucher(id2, payer2, payee, 2 ether); // exceeds deposit
        vs[2] = _voucher(id1, payer, payee, 1 ether); // replay: nothing to redeem
        vs[3] = _voucher(id2, payer2, payee, 1 ether); // bad signature (signed by payer)
        vs[4] = _voucher(99, payer, payee, 1 ether); // unknown channel
        sigs[0] = _sign(payerKey, vs[0]);
        sigs[1] = _sign(payer2Key, vs[1]);
        sigs[2] = sigs[0];
        sigs[3] = _sign(payerKey, vs[3]);
        sigs[4] = _sign(payerKey, vs[4]);

        vm.expectEmit(address(pc));
        emit VoucherRedeemed(id1, payee, 1 ether, 1 ether);
        vm.expectEmit(address(pc));
        emit VoucherSkipped(id2, PaymentChannel.ExceedsDeposit.selector);
        vm.expectEmit(address(pc));
        emit VoucherSkipped(id1, PaymentChannel.NothingToRedeem.selector);
        vm.expectEmit(address(pc));
        emit VoucherSkipped(id2, PaymentChannel.InvalidSignature.selector);
        vm.expectEmit(address(pc));
        emit VoucherSkipped(99, PaymentChannel.ChannelNotFound.selector);
        uint256 total = pc.redeemBatch(vs, sigs);
        assertEq(total, 1 ether);
        assertEq(payee.balance, 1 ether);
    }

    function test_RedeemBatch_SkipsClosedAndMismatched() public {
        uint256 closedId = _closedChannel();
        uint256 id = _openEth(payer2, payee, 1 ether);
        PaymentChannel.Voucher[] memory vs = new PaymentChannel.Voucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = _voucher(closedId, payer, payee, 1 ether);
        vs[1] = _voucher(id, payer2, payee2, 1 ether);
        sigs[0] = _sign(payerKey, vs[0]);
        sigs[1] = _sign(payer2Key, vs[1]);
        vm.expectEmit(address(pc));
        emit VoucherSkipped(closedId, PaymentChannelErrors.ChannelClosed.selector);
        vm.expectEmit(address(pc));
        emit VoucherSkipped(id, PaymentChannel.VoucherMismatch.selector);
        assertEq(pc.redeemBatch(vs, sigs), 0);
    }

    function test_RedeemBatch_Empty() public {
        assertEq(pc.redeemBatch(new PaymentChannel.Voucher[](0), new bytes[](0)), 0);
    }

    function test_RevertWhen_RedeemBatchLengthMismatch() public {
        vm.expectRevert(PaymentChannel.LengthMismatch.selector);
        pc.redeemBatch(new PaymentChannel.Voucher[](1), new bytes[](0));
    }

    function _countTransfers(Vm.Log[] memory logs) internal view returns (uint256 n) {
        bytes32 sig = keccak256("Transfer(address,address,uint256)");
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(token) && logs[i].topics[0] == sig) ++n;
        }
    }

    // ------------------------------------------------------------------ requestClose / withdrawRemainder

    function test_RequestClose() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.expectEmit(address(pc));
        emit CloseRequested(id, block.timestamp + CHALLENGE);
        vm.prank(payer);
        pc.requestClose(id);
        assertEq(pc.channel(id).closeRequestedAt, block.timestamp);
    }

    function test_WithdrawRemainder_AfterChallengePeriod() public {
        uint256 id = _openEth(payer, payee, 10 ether);
        vm.prank(payer);
        pc.requestClose(id);
        // payee redeems during the challenge period
        vm.warp(block.timestamp + CHALLENGE - 1);
        _redeem(payerKey, id, payer, payee, 4 ether);

        vm.warp(block.timestamp + 1);
        uint256 before = payer.balance;
        vm.expectEmit(address(pc));
        emit ChannelClosed(id, 4 ether, 6 ether);
        vm.prank(relayer); // anyone may finalize; funds go to the payer
        assertEq(pc.withdrawRemainder(id), 6 ether);
        assertEq(payer.balance - before, 6 ether);
        assertEq(address(pc).balance, 0);
        assertTrue(pc.channel(id).closed);

        // later vouchers revert
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 5 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.expectRevert(PaymentChannelErrors.ChannelClosed.selector);
        pc.redeem(v, sig);
    }

    function test_WithdrawRemainder_Erc20FullyRedeemed() public {
        uint256 id = _openToken(payer, payee, 10 ether);
        _redeem(payerKey, id, payer, payee, 10 ether);
        vm.prank(payer);
        pc.requestClose(id);
        vm.warp(block.timestamp + CHALLENGE);
        assertEq(pc.withdrawRemainder(id), 0);
        assertTrue(pc.channel(id).closed);
    }

    function test_RevertWhen_RequestCloseNotPayer() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.prank(payee);
        vm.expectRevert(PaymentChannel.NotPayer.selector);
        pc.requestClose(id);
    }

    function test_RevertWhen_RequestCloseTwice() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.startPrank(payer);
        pc.requestClose(id);
        vm.expectRevert(PaymentChannel.CloseAlreadyRequested.selector);
        pc.requestClose(id);
        vm.stopPrank();
    }

    function test_RevertWhen_RequestCloseChannelClosed() public {
        uint256 id = _closedChannel();
        vm.prank(payer);
        vm.expectRevert(PaymentChannelErrors.ChannelClosed.selector);
        pc.requestClose(id);
    }

    function test_RevertWhen_RequestCloseChannelNotFound() public {
        vm.expectRevert(PaymentChannel.ChannelNotFound.selector);
        pc.requestClose(3);
    }

    function test_RevertWhen_WithdrawRemainderCloseNotRequested() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.expectRevert(PaymentChannel.CloseNotRequested.selector);
        pc.withdrawRemainder(id);
    }

    function test_RevertWhen_WithdrawRemainderChallengeActive() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        vm.prank(payer);
        pc.requestClose(id);
        vm.warp(block.timestamp + CHALLENGE - 1);
        vm.expectRevert(PaymentChannel.ChallengePeriodActive.selector);
        pc.withdrawRemainder(id);
    }

    function test_RevertWhen_WithdrawRemainderTwice() public {
        uint256 id = _closedChannel();
        vm.expectRevert(PaymentChannelErrors.ChannelClosed.selector);
        pc.withdrawRemainder(id);
    }

    function test_RevertWhen_WithdrawRemainderChannelNotFound() public {
        vm.expectRevert(PaymentChannel.ChannelNotFound.selector);
        pc.withdrawRemainder(9);
    }

    function test_RevertWhen_WithdrawRemainderPayerRejectsEth() public {
        EthRejecter rejecter = new EthRejecter();
        vm.deal(address(rejecter), 1 ether);
        vm.prank(address(rejecter));
        uint256 id = pc.open{value: 1 ether}(payee, ETH, 1 ether, CHALLENGE);
        vm.prank(address(rejecter));
        pc.requestClose(id);
        vm.warp(block.timestamp + CHALLENGE);
        vm.expectRevert(PaymentChannel.EthTransferFailed.selector);
        pc.withdrawRemainder(id);
    }

    /// @dev Opens a 1-ether ETH channel payer → payee and closes it via the challenge path.
    function _closedChannel() internal returns (uint256 id) {
        id = _openEth(payer, payee, 1 ether);
        vm.prank(payer);
        pc.requestClose(id);
        vm.warp(block.timestamp + CHALLENGE);
        pc.withdrawRemainder(id);
    }

    // ------------------------------------------------------------------ close (cooperative)

    function test_Close_RedeemsAndRefunds() public {
        uint256 id = _openToken(payer, payee, 10 ether);
        _redeem(payerKey, id, payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 3 ether);
        bytes memory sig = _sign(payerKey, v);
        uint256 payerBefore = token.balanceOf(payer);

        vm.expectEmit(address(pc));
        emit VoucherRedeemed(id, payee, 3 ether, 2 ether);
        vm.expectEmit(address(pc));
        emit ChannelClosed(id, 3 ether, 7 ether);
        vm.prank(payee);
        pc.close(id, v, sig);

        assertEq(token.balanceOf(payee), 3 ether);
        assertEq(token.balanceOf(payer) - payerBefore, 7 ether);
        assertEq(token.balanceOf(address(pc)), 0);
        assertTrue(pc.channel(id).closed);
    }

    function test_Close_WithoutNewVoucherSkipsSignature() public {
        uint256 id = _openEth(payer, payee, 10 ether);
        _redeem(payerKey, id, payer, payee, 2 ether);
        uint256 payerBefore = payer.balance;
        vm.prank(payee);
        pc.close(id, _voucher(id, payer, payee, 2 ether), "");
        assertEq(payer.balance - payerBefore, 8 ether);
        assertEq(payee.balance, 2 ether);
    }

    function test_Close_DuringChallengePeriod() public {
        uint256 id = _openEth(payer, payee, 10 ether);
        vm.prank(payer);
        pc.requestClose(id);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 10 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.prank(payee);
        pc.close(id, v, sig);
        assertEq(payee.balance, 10 ether);
    }

    function test_RevertWhen_CloseNotPayee() public {
        uint256 id = _openEth(payer, payee, 10 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.prank(payer);
        vm.expectRevert(PaymentChannel.NotPayee.selector);
        pc.close(id, v, sig);
    }

    function test_RevertWhen_CloseVoucherMismatch() public {
        uint256 id = _openEth(payer, payee, 10 ether);
        uint256 other = _openEth(payer, payee, 10 ether);
        PaymentChannel.Voucher memory v = _voucher(other, payer, payee, 1 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.prank(payee);
        vm.expectRevert(PaymentChannel.VoucherMismatch.selector);
        pc.close(id, v, sig);
    }

    function test_RevertWhen_CloseExceedsDeposit() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 2 ether);
        bytes memory sig = _sign(payerKey, v);
        vm.prank(payee);
        vm.expectRevert(PaymentChannel.ExceedsDeposit.selector);
        pc.close(id, v, sig);
    }

    function test_RevertWhen_CloseInvalidSignature() public {
        uint256 id = _openEth(payer, payee, 1 ether);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, 1 ether);
        bytes memory sig = _sign(payer2Key, v);
        vm.prank(payee);
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.close(id, v, sig);
    }

    function test_RevertWhen_CloseChannelClosed() public {
        uint256 id = _closedChannel();
        vm.prank(payee);
        vm.expectRevert(PaymentChannelErrors.ChannelClosed.selector);
        pc.close(id, _voucher(id, payer, payee, 0), "");
    }

    function test_RevertWhen_CloseChannelNotFound() public {
        vm.prank(payee);
        vm.expectRevert(PaymentChannel.ChannelNotFound.selector);
        pc.close(5, _voucher(5, payer, payee, 0), "");
    }

    // ------------------------------------------------------------------ views

    function test_HashVoucher_MatchesIndependentEip712() public view {
        PaymentChannel.Voucher memory v = _voucher(3, payer, payee, 123);
        assertEq(pc.hashVoucher(v), _digest(v, block.chainid, address(pc)));
    }

    function test_DomainSeparator() public view {
        bytes32 expected = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("ReefPaymentChannel"),
                keccak256("1"),
                block.chainid,
                address(pc)
            )
        );
        assertEq(pc.domainSeparator(), expected);
    }

    function test_Channel_UnknownIsZero() public view {
        PaymentChannel.Channel memory c = pc.channel(1234);
        assertEq(c.payer, address(0));
        assertEq(c.deposit, 0);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_OpenAndDeposit(uint96 initial, uint96 topUp) public {
        initial = uint96(bound(initial, 1, type(uint96).max / 2));
        topUp = uint96(bound(topUp, 1, type(uint96).max / 2));
        token.mint(payer, uint256(initial) + topUp);
        uint256 id = _openToken(payer, payee, initial);
        vm.prank(payer);
        pc.deposit(id, topUp);
        assertEq(pc.channel(id).deposit, uint256(initial) + topUp);
        assertEq(token.balanceOf(address(pc)), uint256(initial) + topUp);
    }

    function testFuzz_CumulativeSequence(uint96 dep, uint96[8] memory cumulatives) public {
        dep = uint96(bound(dep, 1, 100 ether));
        vm.deal(payer, dep);
        uint256 id = _openEth(payer, payee, dep);
        uint256 redeemed;
        for (uint256 i; i < cumulatives.length; ++i) {
            uint256 c = bound(cumulatives[i], 0, uint256(dep) * 2);
            PaymentChannel.Voucher memory v = _voucher(id, payer, payee, c);
            bytes memory sig = _sign(payerKey, v);
            if (c <= redeemed) {
                vm.expectRevert(PaymentChannel.NothingToRedeem.selector);
                pc.redeem(v, sig);
            } else if (c > dep) {
                vm.expectRevert(PaymentChannel.ExceedsDeposit.selector);
                pc.redeem(v, sig);
            } else {
                assertEq(pc.redeem(v, sig), c - redeemed);
                redeemed = c;
            }
            assertEq(payee.balance, redeemed, "payee got exactly the max valid cumulative");
            assertEq(pc.channel(id).redeemed, redeemed);
        }
        vm.prank(payer);
        pc.requestClose(id);
        vm.warp(block.timestamp + CHALLENGE);
        uint256 before = payer.balance;
        pc.withdrawRemainder(id);
        assertEq(payer.balance - before, dep - redeemed);
        assertEq(address(pc).balance, 0);
    }

    function testFuzz_BatchEqualsSequential(uint96[6] memory amounts) public {
        uint256 id1 = _openToken(payer, payee, 50 ether);
        uint256 id2 = _openToken(payer2, payee, 50 ether);
        PaymentChannel.Voucher[] memory vs = new PaymentChannel.Voucher[](6);
        bytes[] memory sigs = new bytes[](6);
        uint256[2] memory maxSeen;
        for (uint256 i; i < 6; ++i) {
            uint256 c = bound(amounts[i], 0, 60 ether);
            bool first = i % 2 == 0;
            vs[i] = _voucher(first ? id1 : id2, first ? payer : payer2, payee, c);
            sigs[i] = _sign(first ? payerKey : payer2Key, vs[i]);
            if (c <= 50 ether && c > maxSeen[i % 2]) maxSeen[i % 2] = c;
        }
        uint256 total = pc.redeemBatch(vs, sigs);
        assertEq(total, maxSeen[0] + maxSeen[1]);
        assertEq(token.balanceOf(payee), total);
        assertEq(pc.channel(id1).redeemed, maxSeen[0]);
        assertEq(pc.channel(id2).redeemed, maxSeen[1]);
    }

    function testFuzz_RandomSignerKey(uint256 key, uint256 otherKey, uint96 amount) public {
        key = bound(key, 1, SECP256K1_ORDER - 1);
        otherKey = bound(otherKey, 1, SECP256K1_ORDER - 1);
        if (otherKey == key) otherKey = key == 1 ? 2 : key - 1;
        amount = uint96(bound(amount, 1, 1000 ether));
        address signer = vm.addr(key);
        vm.deal(signer, amount);
        vm.prank(signer);
        uint256 id = pc.open{value: amount}(payee, ETH, amount, CHALLENGE);

        PaymentChannel.Voucher memory v = _voucher(id, signer, payee, amount);
        bytes memory bad = _sign(otherKey, v);
        vm.expectRevert(PaymentChannel.InvalidSignature.selector);
        pc.redeem(v, bad);

        pc.redeem(v, _sign(key, v));
        assertEq(payee.balance, amount);
    }

    function testFuzz_CloseSplitsDeposit(uint96 dep, uint96 cumulative) public {
        dep = uint96(bound(dep, 1, 100 ether));
        cumulative = uint96(bound(cumulative, 0, dep));
        vm.deal(payer, dep);
        uint256 id = _openEth(payer, payee, dep);
        PaymentChannel.Voucher memory v = _voucher(id, payer, payee, cumulative);
        bytes memory sig = _sign(payerKey, v);
        uint256 payerBefore = payer.balance;
        vm.prank(payee);
        pc.close(id, v, sig);
        assertEq(payee.balance, cumulative);
        assertEq(payer.balance - payerBefore, dep - cumulative);
        assertEq(address(pc).balance, 0);
    }
}
