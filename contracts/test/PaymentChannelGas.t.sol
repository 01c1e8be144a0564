// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {PaymentChannel} from "../src/PaymentChannel.sol";
import {MockERC20} from "./mocks/MockERC20.sol";

/// @notice Gas per voucher of `redeemBatch`: N vouchers from N distinct payers (N channels) to one
///         payee, each channel already redeemed once (the steady state of a payee settling
///         periodically), so every redemption is a non-zero → non-zero storage write. Accounts and
///         storage are cooled (`vm.cool`) before the measured call, as in a fresh transaction.
/// @dev Setup runs with gas metering paused; the figure is gasleft() around the external call, so
///      it excludes the transaction's 21k base cost and calldata cost (measure those on anvil).
contract PaymentChannelGasTest is Test {
    PaymentChannel internal pc;
    MockERC20 internal token;
    address internal payee = makeAddr("payee");

    function setUp() public {
        pc = new PaymentChannel();
        token = new MockERC20("Mock", "MCK");
    }

    function test_RedeemBatch1() public {
        _measure(1, false);
        _measure(1, true);
    }

    function test_RedeemBatch10() public {
        _measure(10, false);
        _measure(10, true);
    }

    function test_RedeemBatch50() public {
        uint256 perVoucherEth = _measure(50, false);
        uint256 perVoucherToken = _measure(50, true);
        assertLe(perVoucherEth, 30_000, "ETH: <= 30k gas per voucher at 50");
        assertLe(perVoucherToken, 30_000, "ERC-20: <= 30k gas per voucher at 50");
    }

    function _measure(uint256 n, bool erc20) internal returns (uint256 perVoucher) {
        vm.pauseGasMetering();
        address tokenAddr = erc20 ? address(token) : address(0);
        PaymentChannel.Voucher[] memory vs = new PaymentChannel.Voucher[](n);
        bytes[] memory sigs = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            uint256 key = uint256(keccak256(abi.encode("payer", erc20, i))) % (2 ** 200) + 1;
            address payer = vm.addr(key);
            uint256 id;
            if (erc20) {
                token.mint(payer, 10 ether);
                vm.startPrank(payer);
                token.approve(address(pc), type(uint256).max);
                id = pc.open(payee, tokenAddr, 10 ether, 1 days);
                vm.stopPrank();
            } else {
                vm.deal(payer, 10 ether);
                vm.prank(payer);
                id = pc.open{value: 10 ether}(payee, tokenAddr, 10 ether, 1 days);
            }
            // first redemption (steady state: redeemed != 0 afterwards)
            PaymentChannel.Voucher memory first = PaymentChannel.Voucher({
                channelId: id, payer: payer, payee: payee, cumulativeAmount: 1 ether
            });
            pc.redeem(first, _sign(key, first));

            vs[i] = PaymentChannel.Voucher({
                channelId: id, payer: payer, payee: payee, cumulativeAmount: 2 ether
            });
            sigs[i] = _sign(key, vs[i]);
        }
        uint256 payeeBefore = erc20 ? token.balanceOf(payee) : payee.balance;
        // a fresh transaction: every account and storage slot starts cold
        vm.cool(address(pc));
        vm.cool(address(token));
        vm.cool(payee);
        vm.resumeGasMetering();

        uint256 g = gasleft();
        pc.redeemBatch(vs, sigs);
        uint256 used = g - gasleft();

        vm.pauseGasMetering();
        uint256 payeeAfter = erc20 ? token.balanceOf(payee) : payee.balance;
        assertEq(payeeAfter - payeeBefore, n * 1 ether);
        perVoucher = used / n;
        emit log_named_uint(erc20 ? "ERC-20 vouchers" : "ETH vouchers", n);
        emit log_named_uint("  batch gas", used);
        emit log_named_uint("  gas per voucher", perVoucher);
        uint256 cd = _calldataGas(abi.encodeCall(PaymentChannel.redeemBatch, (vs, sigs)));
        emit log_named_uint("  est. tx gas per voucher (+21k base +calldata)", (used + cd + 21_000) / n);
        vm.resumeGasMetering();
    }

    /// @dev EIP-2028 calldata cost: 16 gas per non-zero byte, 4 per zero byte.
    function _calldataGas(bytes memory data) internal pure returns (uint256 g) {
        for (uint256 i; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    function _sign(uint256 key, PaymentChannel.Voucher memory v) internal view returns (bytes memory) {
        (uint8 sv, bytes32 r, bytes32 s) = vm.sign(key, pc.hashVoucher(v));
        return abi.encodePacked(r, s, sv);
    }
}
