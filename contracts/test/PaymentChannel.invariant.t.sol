// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {PaymentChannel} from "../src/PaymentChannel.sol";
import {MockERC20} from "./mocks/MockERC20.sol";
import {PaymentChannelHandler} from "./handlers/PaymentChannelHandler.sol";

contract PaymentChannelInvariantTest is Test {
    PaymentChannel internal pc;
    MockERC20 internal token;
    PaymentChannelHandler internal handler;

    function setUp() public {
        pc = new PaymentChannel();
        token = new MockERC20("Mock", "MCK");
        handler = new PaymentChannelHandler(pc, token);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](9);
        selectors[0] = PaymentChannelHandler.open.selector;
        selectors[1] = PaymentChannelHandler.deposit.selector;
        selectors[2] = PaymentChannelHandler.redeem.selector;
        selectors[3] = PaymentChannelHandler.redeemBatch.selector;
        selectors[4] = PaymentChannelHandler.replay.selector;
        selectors[5] = PaymentChannelHandler.requestClose.selector;
        selectors[6] = PaymentChannelHandler.warp.selector;
        selectors[7] = PaymentChannelHandler.withdrawRemainder.selector;
        selectors[8] = PaymentChannelHandler.cooperativeClose.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @dev Σ redeemed per channel <= deposits, and the recorded deposit equals the ghost sum.
    function invariant_RedeemedNeverExceedsDeposit() public view {
        uint256 n = handler.channelCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.channelIds(i);
            PaymentChannel.Channel memory c = pc.channel(id);
            assertLe(c.redeemed, c.deposit);
            assertEq(c.deposit, handler.ghostDeposited(id));
        }
    }

    /// @dev Contract balance per token == Σ (deposit − redeemed − refunded) over all channels, and
    ///      closed channels hold nothing.
    function invariant_BalanceMatchesOpenChannels() public view {
        uint256 n = handler.channelCount();
        uint256 ethOwed;
        uint256 tokenOwed;
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.channelIds(i);
            PaymentChannel.Channel memory c = pc.channel(id);
            uint256 left = uint256(c.deposit) - c.redeemed - handler.ghostRefunded(id);
            if (c.closed) {
                assertEq(left, 0, "closed channel keeps funds");
            } else {
                assertEq(handler.ghostRefunded(id), 0, "open channel refunded");
            }
            if (c.token == address(0)) ethOwed += left;
            else tokenOwed += left;
        }
        assertEq(address(pc).balance, ethOwed, "eth balance");
        assertEq(token.balanceOf(address(pc)), tokenOwed, "token balance");
    }

    /// @dev No voucher pays twice: what each payee actually received equals the sum of `redeemed`
    ///      of its channels (payments are cumulative deltas), and replays never paid.
    function invariant_NoVoucherPaysTwice() public view {
        assertEq(handler.ghostReplayPayouts(), 0, "a replayed voucher paid");
        uint256 n = handler.channelCount();
        uint256 m = handler.payeeCount();
        for (uint256 j; j < m; ++j) {
            address payee = handler.payees(j);
            uint256 ethRedeemed;
            uint256 tokenRedeemed;
            for (uint256 i; i < n; ++i) {
                PaymentChannel.Channel memory c = pc.channel(handler.channelIds(i));
                if (c.payee != payee) continue;
                if (c.token == address(0)) ethRedeemed += c.redeemed;
                else tokenRedeemed += c.redeemed;
            }
            assertEq(handler.ghostReceived(payee, address(0)), ethRedeemed, "eth received");
            assertEq(handler.ghostReceived(payee, address(token)), tokenRedeemed, "token received");
            assertEq(payee.balance, ethRedeemed, "payee eth balance");
            assertEq(token.balanceOf(payee), tokenRedeemed, "payee token balance");
        }
    }
}
