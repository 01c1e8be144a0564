// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {ReefTestToken} from "../src/devnet/ReefTestToken.sol";
import {MockERC1271Wallet} from "./mocks/MockERC1271Wallet.sol";

/// @notice EIP-3009 on the devnet token: what x402's `exact` EVM scheme settles with.
contract ReefTestTokenTest is Test {
    ReefTestToken internal token;
    uint256 internal payerKey = 0xA11CE;
    address internal payer;
    address internal payee = makeAddr("payee");
    address internal relayer = makeAddr("facilitator");

    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    function setUp() public {
        token = new ReefTestToken();
        payer = vm.addr(payerKey);
        token.mint(payer, 100 ether);
        vm.warp(1_800_000_000);
    }

    struct Auth {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    function _auth(uint256 value, bytes32 nonce) internal view returns (Auth memory) {
        return Auth(payer, payee, value, 0, block.timestamp + 60, nonce);
    }

    function _digest(bytes32 typeHash, Auth memory a) internal view returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(typeHash, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce));
        return keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _submit(Auth memory a, bytes memory sig) internal {
        token.transferWithAuthorization(a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig);
    }

    function test_DomainMatchesX402Extra() public view {
        (, string memory name, string memory version, uint256 chainId, address verifying,,) =
            token.eip712Domain();
        assertEq(name, token.name(), "domain name is the token name (x402 extra.name)");
        assertEq(version, "1", "x402 extra.version");
        assertEq(chainId, block.chainid);
        assertEq(verifying, address(token));
        bytes32 expected = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256(bytes(name)),
                keccak256(bytes(version)),
                chainId,
                verifying
            )
        );
        assertEq(token.DOMAIN_SEPARATOR(), expected);
    }

    function test_TransferWithAuthorization_PaysAndMarksNonce() public {
        Auth memory a = _auth(3 ether, keccak256("n1"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.expectEmit(address(token));
        emit AuthorizationUsed(payer, a.nonce);
        vm.prank(relayer);
        _submit(a, sig);
        assertEq(token.balanceOf(payee), 3 ether);
        assertEq(token.balanceOf(payer), 97 ether);
        assertTrue(token.authorizationState(payer, a.nonce));
    }

    function test_TransferWithAuthorization_VrsOverload() public {
        Auth memory a = _auth(1 ether, keccak256("vrs"));
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.prank(relayer);
        token.transferWithAuthorization(a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, v, r, s);
        assertEq(token.balanceOf(payee), 1 ether);
    }

    function test_TransferWithAuthorization_Erc1271Wallet() public {
        MockERC1271Wallet wallet = new MockERC1271Wallet(payer);
        token.mint(address(wallet), 5 ether);
        Auth memory a = Auth(address(wallet), payee, 2 ether, 0, block.timestamp + 60, keccak256("w"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        _submit(a, sig);
        assertEq(token.balanceOf(payee), 2 ether);
    }

    function test_RevertWhen_NonceReplayed() public {
        Auth memory a = _auth(1 ether, keccak256("replay"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        _submit(a, sig);
        vm.expectRevert(
            abi.encodeWithSelector(ReefTestToken.AuthorizationAlreadyUsed.selector, payer, a.nonce)
        );
        _submit(a, sig);
        assertEq(token.balanceOf(payee), 1 ether);
    }

    function test_RevertWhen_Expired() public {
        Auth memory a = _auth(1 ether, keccak256("late"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.warp(a.validBefore);
        vm.expectRevert(
            abi.encodeWithSelector(ReefTestToken.AuthorizationExpired.selector, a.validBefore, a.validBefore)
        );
        _submit(a, sig);
    }

    function test_RevertWhen_NotYetValid() public {
        Auth memory a = _auth(1 ether, keccak256("early"));
        a.validAfter = block.timestamp;
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.expectRevert(
            abi.encodeWithSelector(
                ReefTestToken.AuthorizationNotYetValid.selector, a.validAfter, block.timestamp
            )
        );
        _submit(a, sig);
        vm.warp(block.timestamp + 1);
        _submit(a, sig);
        assertEq(token.balanceOf(payee), 1 ether);
    }

    function test_RevertWhen_ValueChanged() public {
        Auth memory a = _auth(1 ether, keccak256("tamper"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        a.value = 2 ether;
        vm.expectRevert(abi.encodeWithSelector(ReefTestToken.InvalidAuthorizationSignature.selector, payer));
        _submit(a, sig);
    }

    function test_RevertWhen_PayeeChanged() public {
        Auth memory a = _auth(1 ether, keccak256("redirect"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        a.to = relayer;
        vm.expectRevert(abi.encodeWithSelector(ReefTestToken.InvalidAuthorizationSignature.selector, payer));
        _submit(a, sig);
    }

    function test_RevertWhen_SignedByAnotherKey() public {
        Auth memory a = _auth(1 ether, keccak256("other"));
        bytes memory sig = _sign(0xB0B, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.expectRevert(abi.encodeWithSelector(ReefTestToken.InvalidAuthorizationSignature.selector, payer));
        _submit(a, sig);
    }

    function test_RevertWhen_ReceiveSignatureUsedForTransfer() public {
        Auth memory a = _auth(1 ether, keccak256("kind"));
        bytes memory sig = _sign(payerKey, _digest(token.RECEIVE_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.expectRevert(abi.encodeWithSelector(ReefTestToken.InvalidAuthorizationSignature.selector, payer));
        _submit(a, sig);
    }

    function test_ReceiveWithAuthorization_OnlyPayee() public {
        Auth memory a = _auth(1 ether, keccak256("recv"));
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(payerKey, _digest(token.RECEIVE_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(ReefTestToken.CallerNotPayee.selector, relayer, payee));
        token.receiveWithAuthorization(a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, v, r, s);
        vm.prank(payee);
        token.receiveWithAuthorization(a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, v, r, s);
        assertEq(token.balanceOf(payee), 1 ether);
        assertTrue(token.authorizationState(payer, a.nonce));
    }

    function test_CancelAuthorization_BlocksLaterUse() public {
        Auth memory a = _auth(1 ether, keccak256("cancel"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        bytes32 cancelDigest = keccak256(
            abi.encodePacked(
                "\x19\x01",
                token.DOMAIN_SEPARATOR(),
                keccak256(abi.encode(token.CANCEL_AUTHORIZATION_TYPEHASH(), payer, a.nonce))
            )
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, cancelDigest);
        vm.expectEmit(address(token));
        emit AuthorizationCanceled(payer, a.nonce);
        token.cancelAuthorization(payer, a.nonce, v, r, s);
        assertTrue(token.authorizationState(payer, a.nonce));
        vm.expectRevert(
            abi.encodeWithSelector(ReefTestToken.AuthorizationAlreadyUsed.selector, payer, a.nonce)
        );
        _submit(a, sig);
        vm.expectRevert(
            abi.encodeWithSelector(ReefTestToken.AuthorizationAlreadyUsed.selector, payer, a.nonce)
        );
        token.cancelAuthorization(payer, a.nonce, v, r, s);
    }

    function test_RevertWhen_CancelSignedByAnotherKey() public {
        bytes32 nonce = keccak256("c2");
        bytes32 cancelDigest = keccak256(
            abi.encodePacked(
                "\x19\x01",
                token.DOMAIN_SEPARATOR(),
                keccak256(abi.encode(token.CANCEL_AUTHORIZATION_TYPEHASH(), payer, nonce))
            )
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(0xB0B, cancelDigest);
        vm.expectRevert(abi.encodeWithSelector(ReefTestToken.InvalidAuthorizationSignature.selector, payer));
        token.cancelAuthorization(payer, nonce, v, r, s);
    }

    function test_RevertWhen_BalanceTooLow() public {
        Auth memory a = _auth(101 ether, keccak256("broke"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.expectRevert();
        _submit(a, sig);
        assertFalse(token.authorizationState(payer, a.nonce), "a reverted transfer leaves the nonce usable");
    }

    /// @notice Gas of one x402 settlement (`transferWithAuthorization`, packed signature) to a payee
    ///         that already holds tokens, accounts and storage cold as in a fresh transaction.
    function test_GasTransferWithAuthorization() public {
        token.mint(payee, 1 ether);
        Auth memory a = _auth(1 ether, keccak256("gas"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        vm.cool(address(token));
        vm.cool(payer);
        vm.cool(payee);
        uint256 g = gasleft();
        _submit(a, sig);
        uint256 used = g - gasleft();
        emit log_named_uint("transferWithAuthorization execution gas (excl. 21k base + calldata)", used);
        assertEq(token.balanceOf(payee), 2 ether);
    }

    function testFuzz_TransferWithAuthorization(uint256 value, bytes32 nonce, uint256 key, uint64 ttl)
        public
    {
        key = bound(key, 1, 2 ** 200);
        value = bound(value, 0, 1_000 ether);
        ttl = uint64(bound(ttl, 1, 365 days));
        address from = vm.addr(key);
        vm.assume(from != payee);
        token.mint(from, value);
        Auth memory a = Auth(from, payee, value, 0, block.timestamp + ttl, nonce);
        bytes memory sig = _sign(key, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        uint256 before = token.balanceOf(payee);
        uint256 fromBefore = token.balanceOf(from);
        vm.prank(relayer);
        _submit(a, sig);
        assertEq(token.balanceOf(payee) - before, value);
        assertEq(fromBefore - token.balanceOf(from), value);
        assertTrue(token.authorizationState(from, nonce));
        vm.expectRevert(abi.encodeWithSelector(ReefTestToken.AuthorizationAlreadyUsed.selector, from, nonce));
        _submit(a, sig);
    }

    function testFuzz_RevertWhen_AnyFieldTampered(uint8 field, uint256 delta) public {
        delta = bound(delta, 1, type(uint64).max);
        Auth memory a = _auth(1 ether, keccak256("fuzz-tamper"));
        bytes memory sig = _sign(payerKey, _digest(token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), a));
        field = uint8(bound(field, 0, 3));
        if (field == 0) a.value += delta;
        else if (field == 1) a.validBefore += delta;
        else if (field == 2) a.nonce = bytes32(uint256(a.nonce) ^ delta);
        else a.to = address(uint160(a.to) ^ uint160(delta));
        vm.expectRevert(abi.encodeWithSelector(ReefTestToken.InvalidAuthorizationSignature.selector, payer));
        _submit(a, sig);
    }
}
