// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {BountyEscrow} from "../src/BountyEscrow.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {IStakeRegistry} from "../src/interfaces/IStakeRegistry.sol";
import {ReefTestToken} from "../src/devnet/ReefTestToken.sol";

/// @notice The 2-transaction ERC-20 lifecycle as `make bench-gas` runs it (devnet token, 1 % fee,
///         exact approval, consecutive bid nonces, the escrow's and the accounts' balances non-zero:
///         the second lifecycle is the steady state). `forge test --isolate -vvvv --match-contract
///         BountyEscrowGasTest` runs each call as its own transaction (21k base and calldata
///         included, refunds applied) and logs each call's calldata gas: the figures GAS.md breaks
///         down. Anvil receipts (`make bench-gas`) are the reference.
contract BountyEscrowGasTest is Test {
    BountyEscrow internal escrow;
    ReefTestToken internal token;
    address internal feeTo = makeAddr("feeTo");
    address internal poster;
    uint256 internal posterKey;
    address internal provider;
    uint256 internal providerKey;
    address internal evaluator;
    uint256 internal evaluatorKey;
    uint256 internal nonce;

    function setUp() public {
        (poster, posterKey) = makeAddrAndKey("poster");
        (provider, providerKey) = makeAddrAndKey("provider");
        (evaluator, evaluatorKey) = makeAddrAndKey("evaluator");
        vm.warp(1_700_000_000);
        token = new ReefTestToken();
        escrow = new BountyEscrow(address(this), feeTo, 100, IStakeRegistry(address(0)), 0, 0);
        token.mint(poster, 1_000_000e18);
        token.mint(provider, 1e18);
    }

    function test_Gas_TwoTxLifecycleErc20() public {
        _lifecycle(bytes32("warm-up"));
        uint256 providerBefore = token.balanceOf(provider);
        _lifecycle(bytes32("measured"));
        assertEq(token.balanceOf(provider) - providerBefore, 99e18, "price less the 1 % fee");
        assertEq(escrow.accruedFees(address(token)), 2e18, "two fees in the pool");
        assertEq(token.balanceOf(address(escrow)), 2e18, "the escrow keeps only the fees");
        assertTrue(escrow.isNonceUsed(provider, nonce), "the winning bid's nonce is used");
    }

    function _lifecycle(bytes32 salt) internal {
        IBountyTypes.Bounty memory b;
        b.poster = poster;
        b.token = address(token);
        b.amount = 100e18;
        b.evaluator = evaluator;
        b.deadline = uint64(block.timestamp + 86_400);
        b.reviewWindow = 3_600;
        b.feeBps = 100;
        b.specHash = keccak256("Sort these 10,000 integers, ascending.");
        uint256 id = escrow.bountyIdOf(poster, salt);
        IBountyTypes.Bid memory bid = IBountyTypes.Bid({
            bountyId: id,
            termsHash: keccak256(abi.encode(b)),
            bidder: provider,
            amount: b.amount,
            deadline: uint64(block.timestamp + 600),
            eta: 0,
            bond: 0,
            nonce: ++nonce
        });
        bytes memory sig = _sign(providerKey, escrow.hashBid(bid));
        // As escrow-client sends it: the escrow derives the id and the terms hash.
        bid.bountyId = 0;
        bid.termsHash = bytes32(0);
        vm.prank(poster);
        token.approve(address(escrow), b.amount);
        emit log_named_uint(
            "calldata pfa", _calldataGas(abi.encodeCall(escrow.postFundAndAward, (salt, b, bid, sig)))
        );
        vm.prank(poster);
        escrow.postFundAndAward(salt, b, bid, sig);
        b.provider = provider;
        b.price = b.amount;
        bytes32 r = keccak256("sorted output");
        bytes memory att = _sign(
            evaluatorKey,
            escrow.hashAttestation(
                IBountyTypes.Attestation({bountyId: id, provider: provider, resultHash: r, verdict: 1})
            )
        );
        emit log_named_uint(
            "calldata saa", _calldataGas(abi.encodeCall(escrow.submitAndAttest, (id, b, r, 1, att)))
        );
        vm.prank(provider);
        escrow.submitAndAttest(id, b, r, 1, att);
    }

    function _calldataGas(bytes memory data) internal pure returns (uint256 g) {
        for (uint256 i; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }
}
