// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {PaymentChannel} from "../../src/PaymentChannel.sol";
import {MockERC20} from "../mocks/MockERC20.sol";

/// @notice Drives PaymentChannel with a fixed actor set and records ghost sums measured from
///         balance changes (independent of the contract's own bookkeeping).
contract PaymentChannelHandler is CommonBase, StdCheats, StdUtils {
    PaymentChannel public immutable pc;
    MockERC20 public immutable token;

    uint256 internal constant N_PAYERS = 3;
    uint256 internal constant N_PAYEES = 3;
    uint256 internal constant MAX_DEPOSIT = 1_000 ether;

    uint256[] internal payerKeys;
    address[] public payers;
    address[] public payees;
    uint256[] public channelIds;

    // ghosts
    mapping(uint256 channelId => uint256) public ghostDeposited;
    mapping(uint256 channelId => uint256) public ghostRefunded;
    mapping(address payee => mapping(address token => uint256)) public ghostReceived;
    uint256 public ghostReplayPayouts; // number of replayed vouchers that paid anything (must stay 0)
    uint256 public ghostRedeemCalls;
    uint256 public ghostSkipped;

    struct Redeemed {
        PaymentChannel.Voucher v;
        bytes sig;
    }

    Redeemed[] internal redeemedVouchers;

    constructor(PaymentChannel pc_, MockERC20 token_) {
        pc = pc_;
        token = token_;
        for (uint256 i; i < N_PAYERS; ++i) {
            uint256 key = uint256(keccak256(abi.encode("reef.payer", i))) % (2 ** 160) + 1;
            payerKeys.push(key);
            address a = vm.addr(key);
            payers.push(a);
            vm.prank(a);
            token.approve(address(pc_), type(uint256).max);
        }
        for (uint256 i; i < N_PAYEES; ++i) {
            payees.push(makeAddr(string(abi.encodePacked("reef.payee", vm.toString(i)))));
        }
    }

    // ------------------------------------------------------------------ actions

    function open(uint256 payerSeed, uint256 payeeSeed, bool useToken, uint256 amount, uint256 period)
        external
    {
        uint256 p = payerSeed % N_PAYERS;
        address payer = payers[p];
        address payee = payees[payeeSeed % N_PAYEES];
        amount = bound(amount, 1, MAX_DEPOSIT);
        uint32 challenge = uint32(bound(period, 1, 7 days));
        uint256 id;
        if (useToken) {
            token.mint(payer, amount);
            vm.prank(payer);
            id = pc.open(payee, address(token), uint128(amount), challenge);
        } else {
            vm.deal(payer, payer.balance + amount);
            vm.prank(payer);
            id = pc.open{value: amount}(payee, address(0), uint128(amount), challenge);
        }
        channelIds.push(id);
        ghostDeposited[id] += amount;
    }

    function deposit(uint256 idSeed, uint256 amount, uint256 fromSeed) external {
        if (channelIds.length == 0) return;
        uint256 id = channelIds[idSeed % channelIds.length];
        PaymentChannel.Channel memory c = pc.channel(id);
        if (c.closed) return;
        amount = bound(amount, 1, MAX_DEPOSIT);
        address from = payers[fromSeed % N_PAYERS]; // anyone may top up
        if (c.token == address(0)) {
            vm.deal(from, from.balance + amount);
            vm.prank(from);
            pc.deposit{value: amount}(id, uint128(amount));
        } else {
            token.mint(from, amount);
            vm.prank(from);
            pc.deposit(id, uint128(amount));
        }
        ghostDeposited[id] += amount;
    }

    function redeem(uint256 idSeed, uint256 cumulativeSeed, bool wrongKey) external {
        if (channelIds.length == 0) return;
        uint256 id = channelIds[idSeed % channelIds.length];
        PaymentChannel.Channel memory c = pc.channel(id);
        (PaymentChannel.Voucher memory v, bytes memory sig) = _make(id, c, cumulativeSeed, wrongKey);
        uint256 before = _balance(c.token, c.payee);
        ++ghostRedeemCalls;
        try pc.redeem(v, sig) returns (uint256 paid) {
            uint256 got = _balance(c.token, c.payee) - before;
            require(got == paid, "paid mismatch");
            ghostReceived[c.payee][c.token] += got;
            redeemedVouchers.push(Redeemed(v, sig));
        } catch {
            require(_balance(c.token, c.payee) == before, "reverted but paid");
        }
    }

    function redeemBatch(uint256[4] calldata idSeeds, uint256[4] calldata cumulativeSeeds, uint8 wrongMask)
        external
    {
        if (channelIds.length == 0) return;
        PaymentChannel.Voucher[] memory vs = new PaymentChannel.Voucher[](4);
        bytes[] memory sigs = new bytes[](4);
        // snapshot balances of every (payee, token)
        uint256[N_PAYEES][2] memory before;
        for (uint256 j; j < N_PAYEES; ++j) {
            before[0][j] = payees[j].balance;
            before[1][j] = token.balanceOf(payees[j]);
        }
        for (uint256 i; i < 4; ++i) {
            uint256 id = channelIds[idSeeds[i] % channelIds.length];
            (vs[i], sigs[i]) = _make(id, pc.channel(id), cumulativeSeeds[i], (wrongMask >> i) & 1 == 1);
        }
        uint256[] memory redeemedBefore = new uint256[](4);
        for (uint256 i; i < 4; ++i) {
            redeemedBefore[i] = pc.channel(vs[i].channelId).redeemed;
        }
        ++ghostRedeemCalls;
        uint256 total = pc.redeemBatch(vs, sigs);
        uint256 sumGot;
        for (uint256 j; j < N_PAYEES; ++j) {
            uint256 gotEth = payees[j].balance - before[0][j];
            uint256 gotTok = token.balanceOf(payees[j]) - before[1][j];
            ghostReceived[payees[j]][address(0)] += gotEth;
            ghostReceived[payees[j]][address(token)] += gotTok;
            sumGot += gotEth + gotTok;
        }
        require(sumGot == total, "batch total mismatch");
        for (uint256 i; i < 4; ++i) {
            if (pc.channel(vs[i].channelId).redeemed == vs[i].cumulativeAmount && vs[i].cumulativeAmount != 0)
            {
                redeemedVouchers.push(Redeemed(vs[i], sigs[i]));
            } else {
                ++ghostSkipped;
            }
        }
    }

    /// @dev Re-submit an already redeemed voucher, alone and in a batch: it must never pay again.
    function replay(uint256 seed) external {
        if (redeemedVouchers.length == 0) return;
        Redeemed memory r = redeemedVouchers[seed % redeemedVouchers.length];
        PaymentChannel.Channel memory c = pc.channel(r.v.channelId);
        uint256 before = _balance(c.token, c.payee);
        try pc.redeem(r.v, r.sig) {
            ++ghostReplayPayouts;
        } catch {}
        PaymentChannel.Voucher[] memory vs = new PaymentChannel.Voucher[](1);
        bytes[] memory sigs = new bytes[](1);
        vs[0] = r.v;
        sigs[0] = r.sig;
        if (pc.redeemBatch(vs, sigs) != 0) ++ghostReplayPayouts;
        if (_balance(c.token, c.payee) != before) ++ghostReplayPayouts;
    }

    function requestClose(uint256 idSeed) external {
        if (channelIds.length == 0) return;
        uint256 id = channelIds[idSeed % channelIds.length];
        PaymentChannel.Channel memory c = pc.channel(id);
        if (c.closed || c.closeRequestedAt != 0) return;
        vm.prank(c.payer);
        pc.requestClose(id);
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 3 days));
    }

    function withdrawRemainder(uint256 idSeed) external {
        if (channelIds.length == 0) return;
        uint256 id = channelIds[idSeed % channelIds.length];
        PaymentChannel.Channel memory c = pc.channel(id);
        if (
            c.closed || c.closeRequestedAt == 0
                || block.timestamp < uint256(c.closeRequestedAt) + c.challengePeriod
        ) {
            return;
        }
        uint256 before = _balance(c.token, c.payer);
        uint256 refunded = pc.withdrawRemainder(id);
        require(_balance(c.token, c.payer) - before == refunded, "refund mismatch");
        ghostRefunded[id] += refunded;
    }

    function cooperativeClose(uint256 idSeed, uint256 cumulativeSeed) external {
        if (channelIds.length == 0) return;
        uint256 id = channelIds[idSeed % channelIds.length];
        PaymentChannel.Channel memory c = pc.channel(id);
        if (c.closed) return;
        uint256 cumulative = bound(cumulativeSeed, c.redeemed, c.deposit);
        PaymentChannel.Voucher memory v = PaymentChannel.Voucher({
            channelId: id, payer: c.payer, payee: c.payee, cumulativeAmount: cumulative
        });
        bytes memory sig = _sign(_keyOf(c.payer), v);
        uint256 payeeBefore = _balance(c.token, c.payee);
        uint256 payerBefore = _balance(c.token, c.payer);
        vm.prank(c.payee);
        pc.close(id, v, sig);
        ghostReceived[c.payee][c.token] += _balance(c.token, c.payee) - payeeBefore;
        ghostRefunded[id] += _balance(c.token, c.payer) - payerBefore;
        if (cumulative > c.redeemed) redeemedVouchers.push(Redeemed(v, sig));
    }

    // ------------------------------------------------------------------ views for invariants

    function channelCount() external view returns (uint256) {
        return channelIds.length;
    }

    function payeeCount() external pure returns (uint256) {
        return N_PAYEES;
    }

    // ------------------------------------------------------------------ internals

    function _make(uint256 id, PaymentChannel.Channel memory c, uint256 cumulativeSeed, bool wrongKey)
        internal
        view
        returns (PaymentChannel.Voucher memory v, bytes memory sig)
    {
        // mostly valid amounts, sometimes stale or above the deposit
        uint256 cumulative = bound(cumulativeSeed, 0, uint256(c.deposit) + 1 ether);
        v = PaymentChannel.Voucher({
            channelId: id, payer: c.payer, payee: c.payee, cumulativeAmount: cumulative
        });
        uint256 key = _keyOf(c.payer);
        if (wrongKey) key = payerKeys[(_indexOf(c.payer) + 1) % N_PAYERS];
        sig = _sign(key, v);
    }

    function _sign(uint256 key, PaymentChannel.Voucher memory v) internal view returns (bytes memory) {
        (uint8 sv, bytes32 r, bytes32 s) = vm.sign(key, pc.hashVoucher(v));
        return abi.encodePacked(r, s, sv);
    }

    function _indexOf(address payer) internal view returns (uint256) {
        for (uint256 i; i < N_PAYERS; ++i) {
            if (payers[i] == payer) return i;
        }
        revert("unknown payer");
    }

    function _keyOf(address payer) internal view returns (uint256) {
        return payerKeys[_indexOf(payer)];
    }

    function _balance(address tok, address who) internal view returns (uint256) {
        return tok == address(0) ? who.balance : token.balanceOf(who);
    }
}
