// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {AgentRegistry} from "../src/AgentRegistry.sol";
import {IStakeRegistry} from "../src/interfaces/IStakeRegistry.sol";
import {MockERC1271Wallet} from "./mocks/MockERC1271Wallet.sol";
import {EthRejecter, GasBurner} from "./mocks/EthRejecter.sol";

contract AgentRegistryTest is Test {
    event Registered(uint256 indexed agentId, string agentURI, address indexed owner);
    event MetadataSet(
        uint256 indexed agentId, string indexed indexedMetadataKey, string metadataKey, bytes metadataValue
    );
    event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy);
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event EscrowSet(address indexed escrow);
    event Staked(address indexed account, uint256 amount, uint256 bonded);
    event UnbondRequested(address indexed account, uint256 amount, uint256 releaseAt);
    event Unbonded(address indexed account, uint256 amount);
    event Slashed(address indexed account, uint256 amount, address indexed to);
    event SlashPayoutDeferred(address indexed to, uint256 amount);
    event SlashedWithdrawn(address indexed to, uint256 amount);

    uint256 internal constant DELAY = 7 days;
    bytes32 internal constant WALLET_TYPEHASH =
        keccak256("AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)");

    AgentRegistry internal reg;
    address internal admin = makeAddr("admin");
    address internal escrow = makeAddr("escrow");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal operator = makeAddr("operator");
    uint256 internal walletKey = 0xBEEF;
    address internal wallet;

    function setUp() public {
        reg = new AgentRegistry(admin, DELAY);
        vm.prank(admin);
        reg.setEscrow(escrow);
        wallet = vm.addr(walletKey);
        vm.deal(alice, 100 ether);
        vm.deal(bob, 100 ether);
    }

    // ------------------------------------------------------------------ helpers

    function _register(address who) internal returns (uint256 id) {
        vm.prank(who);
        id = reg.register("ipfs://agent");
    }

    function _walletDigest(
        uint256 agentId,
        address newWallet,
        address owner,
        uint256 deadline,
        uint256 chainId
    ) internal view returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("ERC8004IdentityRegistry"),
                keccak256("1"),
                chainId,
                address(reg)
            )
        );
        bytes32 structHash = keccak256(abi.encode(WALLET_TYPEHASH, agentId, newWallet, owner, deadline));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    function _walletSig(uint256 key, uint256 agentId, address newWallet, address owner, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(key, _walletDigest(agentId, newWallet, owner, deadline, block.chainid));
        return abi.encodePacked(r, s, v);
    }

    // ================================================================== identity

    function test_Register_NoUri() public {
        vm.expectEmit(address(reg));
        emit Transfer(address(0), alice, 0);
        vm.expectEmit(address(reg));
        emit MetadataSet(0, "agentWallet", "agentWallet", abi.encodePacked(alice));
        vm.expectEmit(address(reg));
        emit Registered(0, "", alice);
        vm.prank(alice);
        uint256 id = reg.register();
        assertEq(id, 0, "ids start at 0 (ERC-8004 reference)");
        assertEq(reg.ownerOf(id), alice);
        assertEq(reg.tokenURI(id), "");
        assertEq(reg.getAgentWallet(id), alice);
        assertEq(reg.totalAgents(), 1);
    }

    function test_Register_WithUri() public {
        vm.expectEmit(address(reg));
        emit Registered(0, "ipfs://agent", alice);
        uint256 id = _register(alice);
        assertEq(reg.tokenURI(id), "ipfs://agent");
        assertEq(_register(bob), 1);
        assertEq(reg.name(), "Reef Agent");
        assertEq(reg.symbol(), "REEF");
    }

    function test_Register_WithMetadata() public {
        AgentRegistry.MetadataEntry[] memory md = new AgentRegistry.MetadataEntry[](2);
        md[0] = AgentRegistry.MetadataEntry("agentName", bytes("reef.eth"));
        md[1] = AgentRegistry.MetadataEntry("price", abi.encode(uint256(42)));
        vm.expectEmit(address(reg));
        emit MetadataSet(0, "agentName", "agentName", bytes("reef.eth"));
        vm.expectEmit(address(reg));
        emit MetadataSet(0, "price", "price", abi.encode(uint256(42)));
        vm.prank(alice);
        uint256 id = reg.register("ipfs://a", md);
        assertEq(reg.getMetadata(id, "agentName"), bytes("reef.eth"));
        assertEq(abi.decode(reg.getMetadata(id, "price"), (uint256)), 42);
        assertEq(reg.getMetadata(id, "agentWallet"), abi.encodePacked(alice));
    }

    function test_RevertWhen_RegisterWithReservedKey() public {
        AgentRegistry.MetadataEntry[] memory md = new AgentRegistry.MetadataEntry[](1);
        md[0] = AgentRegistry.MetadataEntry("agentWallet", abi.encodePacked(bob));
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.ReservedMetadataKey.selector);
        reg.register("ipfs://a", md);
    }

    function test_RevertWhen_RegisterFromNonReceiverContract() public {
        EthRejecter c = new EthRejecter();
        vm.prank(address(c));
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(c)));
        reg.register();
    }

    function test_SetAgentURI_ByOwnerApprovedAndOperator() public {
        uint256 id = _register(alice);
        vm.expectEmit(address(reg));
        emit URIUpdated(id, "ipfs://v2", alice);
        vm.prank(alice);
        reg.setAgentURI(id, "ipfs://v2");
        assertEq(reg.tokenURI(id), "ipfs://v2");

        vm.prank(alice);
        reg.approve(bob, id);
        vm.prank(bob);
        reg.setAgentURI(id, "ipfs://v3");
        assertEq(reg.tokenURI(id), "ipfs://v3");

        vm.prank(alice);
        reg.setApprovalForAll(operator, true);
        vm.prank(operator);
        reg.setAgentURI(id, "ipfs://v4");
        assertEq(reg.tokenURI(id), "ipfs://v4");
    }

    function test_RevertWhen_SetAgentURINotAuthorized() public {
        uint256 id = _register(alice);
        vm.prank(bob);
        vm.expectRevert(AgentRegistry.NotAuthorized.selector);
        reg.setAgentURI(id, "x");
    }

    function test_RevertWhen_SetAgentURINonexistent() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 5));
        reg.setAgentURI(5, "x");
    }

    function test_SetMetadata() public {
        uint256 id = _register(alice);
        vm.expectEmit(address(reg));
        emit MetadataSet(id, "k", "k", hex"0102");
        vm.prank(alice);
        reg.setMetadata(id, "k", hex"0102");
        assertEq(reg.getMetadata(id, "k"), hex"0102");
        assertEq(reg.getMetadata(id, "missing"), "");
    }

    function test_RevertWhen_SetMetadataReservedKey() public {
        uint256 id = _register(alice);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.ReservedMetadataKey.selector);
        reg.setMetadata(id, "agentWallet", abi.encodePacked(bob));
    }

    function test_RevertWhen_SetMetadataNotAuthorized() public {
        uint256 id = _register(alice);
        vm.prank(bob);
        vm.expectRevert(AgentRegistry.NotAuthorized.selector);
        reg.setMetadata(id, "k", hex"01");
    }

    // ------------------------------------------------------------------ agent wallet

    function test_SetAgentWallet_Eoa() public {
        uint256 id = _register(alice);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(walletKey, id, wallet, alice, deadline);
        vm.expectEmit(address(reg));
        emit MetadataSet(id, "agentWallet", "agentWallet", abi.encodePacked(wallet));
        vm.prank(alice);
        reg.setAgentWallet(id, wallet, deadline, sig);
        assertEq(reg.getAgentWallet(id), wallet);
        assertEq(reg.getMetadata(id, "agentWallet"), abi.encodePacked(wallet));
    }

    function test_SetAgentWallet_ByOperator() public {
        uint256 id = _register(alice);
        vm.prank(alice);
        reg.setApprovalForAll(operator, true);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(walletKey, id, wallet, alice, deadline); // owner field = token owner
        vm.prank(operator);
        reg.setAgentWallet(id, wallet, deadline, sig);
        assertEq(reg.getAgentWallet(id), wallet);
    }

    function test_SetAgentWallet_Erc1271() public {
        uint256 id = _register(alice);
        uint256 signerKey = 0x5AFE;
        MockERC1271Wallet sc = new MockERC1271Wallet(vm.addr(signerKey));
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(signerKey, id, address(sc), alice, deadline);
        vm.prank(alice);
        reg.setAgentWallet(id, address(sc), deadline, sig);
        assertEq(reg.getAgentWallet(id), address(sc));
    }

    function test_RevertWhen_SetAgentWalletErc1271Rejects() public {
        uint256 id = _register(alice);
        uint256 signerKey = 0x5AFE;
        MockERC1271Wallet sc = new MockERC1271Wallet(vm.addr(signerKey));
        sc.setAcceptSignatures(false);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(signerKey, id, address(sc), alice, deadline);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.InvalidWalletSignature.selector);
        reg.setAgentWallet(id, address(sc), deadline, sig);
    }

    function test_RevertWhen_SetAgentWalletExpired() public {
        uint256 id = _register(alice);
        uint256 deadline = block.timestamp;
        bytes memory sig = _walletSig(walletKey, id, wallet, alice, deadline);
        vm.warp(deadline + 1);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.SignatureExpired.selector);
        reg.setAgentWallet(id, wallet, deadline, sig);
    }

    function test_RevertWhen_SetAgentWalletDeadlineTooFar() public {
        uint256 id = _register(alice);
        uint256 deadline = block.timestamp + reg.MAX_DEADLINE_DELAY() + 1;
        bytes memory sig = _walletSig(walletKey, id, wallet, alice, deadline);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.DeadlineTooFar.selector);
        reg.setAgentWallet(id, wallet, deadline, sig);
    }

    function test_RevertWhen_SetAgentWalletWrongSigner() public {
        uint256 id = _register(alice);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(0xBAD, id, wallet, alice, deadline);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.InvalidWalletSignature.selector);
        reg.setAgentWallet(id, wallet, deadline, sig);
    }

    function test_RevertWhen_SetAgentWalletWrongChainId() public {
        uint256 id = _register(alice);
        uint256 deadline = block.timestamp + 60;
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(walletKey, _walletDigest(id, wallet, alice, deadline, block.chainid + 1));
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.InvalidWalletSignature.selector);
        reg.setAgentWallet(id, wallet, deadline, abi.encodePacked(r, s, v));
    }

    function test_RevertWhen_SetAgentWalletSignatureForOtherAgent() public {
        uint256 id = _register(alice);
        uint256 other = _register(alice);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(walletKey, other, wallet, alice, deadline);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.InvalidWalletSignature.selector);
        reg.setAgentWallet(id, wallet, deadline, sig);
    }

    function test_RevertWhen_SetAgentWalletReplayedAfterTransfer() public {
        uint256 id = _register(alice);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(walletKey, id, wallet, alice, deadline);
        vm.prank(alice);
        reg.transferFrom(alice, bob, id);
        vm.prank(bob); // new owner replays the old proof: it names the old owner
        vm.expectRevert(AgentRegistry.InvalidWalletSignature.selector);
        reg.setAgentWallet(id, wallet, deadline, sig);
    }

    function test_RevertWhen_SetAgentWalletZero() public {
        uint256 id = _register(alice);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.ZeroAddress.selector);
        reg.setAgentWallet(id, address(0), block.timestamp, "");
    }

    function test_RevertWhen_SetAgentWalletNotAuthorized() public {
        uint256 id = _register(alice);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(walletKey, id, wallet, alice, deadline);
        vm.prank(wallet); // the wallet itself is not an operator
        vm.expectRevert(AgentRegistry.NotAuthorized.selector);
        reg.setAgentWallet(id, wallet, deadline, sig);
    }

    function test_UnsetAgentWallet() public {
        uint256 id = _register(alice);
        vm.expectEmit(address(reg));
        emit MetadataSet(id, "agentWallet", "agentWallet", "");
        vm.prank(alice);
        reg.unsetAgentWallet(id);
        assertEq(reg.getAgentWallet(id), address(0));
        assertEq(reg.getMetadata(id, "agentWallet"), "");
    }

    function test_RevertWhen_UnsetAgentWalletNotAuthorized() public {
        uint256 id = _register(alice);
        vm.prank(bob);
        vm.expectRevert(AgentRegistry.NotAuthorized.selector);
        reg.unsetAgentWallet(id);
    }

    function test_RevertWhen_GetAgentWalletNonexistent() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 3));
        reg.getAgentWallet(3);
    }

    function test_Transfer_ClearsAgentWallet() public {
        uint256 id = _register(alice);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(walletKey, id, wallet, alice, deadline);
        vm.prank(alice);
        reg.setAgentWallet(id, wallet, deadline, sig);

        vm.expectEmit(address(reg));
        emit MetadataSet(id, "agentWallet", "agentWallet", "");
        vm.prank(alice);
        reg.transferFrom(alice, bob, id);
        assertEq(reg.ownerOf(id), bob);
        assertEq(reg.getAgentWallet(id), address(0));
        assertEq(reg.getMetadata(id, "agentWallet"), "");
    }

    function test_SafeTransfer_ClearsAgentWallet() public {
        uint256 id = _register(alice);
        vm.prank(alice);
        reg.safeTransferFrom(alice, bob, id);
        assertEq(reg.getAgentWallet(id), address(0));
    }

    function test_IsAuthorizedOrOwner() public {
        uint256 id = _register(alice);
        vm.prank(alice);
        reg.approve(bob, id);
        assertTrue(reg.isAuthorizedOrOwner(alice, id));
        assertTrue(reg.isAuthorizedOrOwner(bob, id));
        assertFalse(reg.isAuthorizedOrOwner(operator, id));
    }

    function test_SupportsInterfaces() public view {
        assertTrue(reg.supportsInterface(0x80ac58cd)); // ERC-721
        assertTrue(reg.supportsInterface(0x5b5e139f)); // ERC-721 metadata
        assertTrue(reg.supportsInterface(0x49064906)); // ERC-4906
    }

    function test_DomainSeparator() public view {
        bytes32 expected = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("ERC8004IdentityRegistry"),
                keccak256("1"),
                block.chainid,
                address(reg)
            )
        );
        assertEq(reg.domainSeparator(), expected);
    }

    // ================================================================== stake

    function test_SetEscrow() public {
        AgentRegistry r = new AgentRegistry(admin, DELAY);
        vm.expectEmit(address(r));
        emit EscrowSet(escrow);
        vm.prank(admin);
        r.setEscrow(escrow);
        assertEq(r.escrow(), escrow);
        assertEq(r.owner(), admin);
        assertEq(r.unbondingDelay(), DELAY);
    }

    function test_RevertWhen_SetEscrowTwice() public {
        vm.prank(admin);
        vm.expectRevert(AgentRegistry.EscrowAlreadySet.selector);
        reg.setEscrow(bob);
    }

    function test_RevertWhen_SetEscrowNotOwner() public {
        AgentRegistry r = new AgentRegistry(admin, DELAY);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        r.setEscrow(escrow);
    }

    function test_RevertWhen_SetEscrowZero() public {
        AgentRegistry r = new AgentRegistry(admin, DELAY);
        vm.prank(admin);
        vm.expectRevert(AgentRegistry.ZeroAddress.selector);
        r.setEscrow(address(0));
    }

    function test_Stake() public {
        vm.expectEmit(address(reg));
        emit Staked(alice, 3 ether, 3 ether);
        vm.prank(alice);
        reg.stake{value: 3 ether}();
        vm.prank(alice);
        reg.stake{value: 1 ether}();
        assertEq(reg.stakeOf(alice), 4 ether);
        assertEq(address(reg).balance, 4 ether);
    }

    function test_RevertWhen_StakeZero() public {
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.ZeroAmount.selector);
        reg.stake();
    }

    function test_RequestUnbond_AndWithdraw() public {
        vm.startPrank(alice);
        reg.stake{value: 5 ether}();
        vm.expectEmit(address(reg));
        emit UnbondRequested(alice, 2 ether, block.timestamp + DELAY);
        reg.requestUnbond(2 ether);
        assertEq(reg.stakeOf(alice), 3 ether);
        (uint256 amount, uint256 releaseAt) = reg.unbondingOf(alice);
        assertEq(amount, 2 ether);
        assertEq(releaseAt, block.timestamp + DELAY);

        vm.warp(releaseAt);
        uint256 before = alice.balance;
        vm.expectEmit(address(reg));
        emit Unbonded(alice, 2 ether);
        assertEq(reg.withdrawUnbonded(), 2 ether);
        vm.stopPrank();
        assertEq(alice.balance - before, 2 ether);
        (amount, releaseAt) = reg.unbondingOf(alice);
        assertEq(amount, 0);
        assertEq(releaseAt, 0);
    }

    function test_RequestUnbond_ResetsReleaseTime() public {
        vm.startPrank(alice);
        reg.stake{value: 5 ether}();
        reg.requestUnbond(1 ether);
        vm.warp(block.timestamp + 1 days);
        reg.requestUnbond(1 ether);
        vm.stopPrank();
        (uint256 amount, uint256 releaseAt) = reg.unbondingOf(alice);
        assertEq(amount, 2 ether);
        assertEq(releaseAt, block.timestamp + DELAY);
    }

    function test_RevertWhen_RequestUnbondZero() public {
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.ZeroAmount.selector);
        reg.requestUnbond(0);
    }

    function test_RevertWhen_RequestUnbondExceedsStake() public {
        vm.startPrank(alice);
        reg.stake{value: 1 ether}();
        vm.expectRevert(AgentRegistry.InsufficientStake.selector);
        reg.requestUnbond(1 ether + 1);
        vm.stopPrank();
    }

    function test_RevertWhen_WithdrawUnbondedLocked() public {
        vm.startPrank(alice);
        reg.stake{value: 1 ether}();
        reg.requestUnbond(1 ether);
        vm.warp(block.timestamp + DELAY - 1);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.UnbondingLocked.selector, block.timestamp + 1));
        reg.withdrawUnbonded();
        vm.stopPrank();
    }

    function test_RevertWhen_WithdrawUnbondedNothing() public {
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.NothingUnbonding.selector);
        reg.withdrawUnbonded();
    }

    function test_RevertWhen_WithdrawUnbondedReceiverRejects() public {
        EthRejecter r = new EthRejecter();
        vm.deal(address(r), 1 ether);
        vm.startPrank(address(r));
        reg.stake{value: 1 ether}();
        reg.requestUnbond(1 ether);
        vm.warp(block.timestamp + DELAY);
        vm.expectRevert(AgentRegistry.EthTransferFailed.selector);
        reg.withdrawUnbonded();
        vm.stopPrank();
    }

    function test_Slash_BondedFirstThenUnbonding() public {
        vm.startPrank(alice);
        reg.stake{value: 5 ether}();
        reg.requestUnbond(3 ether); // bonded 2, unbonding 3
        vm.stopPrank();

        vm.expectEmit(address(reg));
        emit Slashed(alice, 4 ether, bob);
        vm.prank(escrow);
        assertEq(reg.slash(alice, 4 ether, bob), 4 ether);
        assertEq(reg.stakeOf(alice), 0);
        (uint256 unbonding,) = reg.unbondingOf(alice);
        assertEq(unbonding, 1 ether);
        assertEq(bob.balance, 104 ether);
        assertEq(address(reg).balance, 1 ether);
    }

    function test_Slash_AllUnbondingClearsReleaseTime() public {
        vm.startPrank(alice);
        reg.stake{value: 2 ether}();
        reg.requestUnbond(2 ether);
        vm.stopPrank();
        vm.prank(escrow);
        assertEq(reg.slash(alice, 2 ether, bob), 2 ether);
        (uint256 amount, uint256 releaseAt) = reg.unbondingOf(alice);
        assertEq(amount, 0);
        assertEq(releaseAt, 0);
    }

    function test_Slash_CappedAtAvailable() public {
        vm.prank(alice);
        reg.stake{value: 1 ether}();
        vm.prank(escrow);
        assertEq(reg.slash(alice, 10 ether, bob), 1 ether);
        assertEq(reg.stakeOf(alice), 0);
    }

    function test_Slash_NothingToSlashReturnsZero() public {
        vm.recordLogs();
        vm.prank(escrow);
        assertEq(reg.slash(alice, 1 ether, bob), 0);
        assertEq(vm.getRecordedLogs().length, 0);
    }

    function test_Slash_RecipientRejectsEthCreditsPullBalance() public {
        address rejecter = address(new EthRejecter());
        vm.prank(alice);
        reg.stake{value: 2 ether}();
        vm.expectEmit(address(reg));
        emit SlashPayoutDeferred(rejecter, 2 ether);
        vm.prank(escrow);
        assertEq(reg.slash(alice, 2 ether, rejecter), 2 ether);
        assertEq(reg.pendingSlashedOf(rejecter), 2 ether);
        assertEq(address(reg).balance, 2 ether);
    }

    function test_Slash_GasGriefingRecipientIsBounded() public {
        address burner = address(new GasBurner());
        vm.prank(alice);
        reg.stake{value: 1 ether}();
        vm.prank(escrow);
        uint256 g = gasleft();
        reg.slash(alice, 1 ether, burner);
        assertLt(g - gasleft(), reg.SLASH_PAYOUT_GAS() + 60_000);
        assertEq(reg.pendingSlashedOf(burner), 1 ether);
    }

    function test_WithdrawSlashed() public {
        MockERC1271Wallet sc = new MockERC1271Wallet(alice);
        sc.setRejectEth(true);
        vm.prank(alice);
        reg.stake{value: 2 ether}();
        vm.prank(escrow);
        reg.slash(alice, 2 ether, address(sc));
        assertEq(reg.pendingSlashedOf(address(sc)), 2 ether);

        sc.setRejectEth(false);
        vm.expectEmit(address(reg));
        emit SlashedWithdrawn(address(sc), 2 ether);
        bytes memory ret = sc.execute(address(reg), 0, abi.encodeCall(AgentRegistry.withdrawSlashed, ()));
        assertEq(abi.decode(ret, (uint256)), 2 ether);
        assertEq(address(sc).balance, 2 ether);
        assertEq(reg.pendingSlashedOf(address(sc)), 0);
    }

    function test_RevertWhen_WithdrawSlashedNothing() public {
        vm.prank(bob);
        vm.expectRevert(AgentRegistry.NothingToWithdraw.selector);
        reg.withdrawSlashed();
    }

    function test_RevertWhen_WithdrawSlashedReceiverStillRejects() public {
        MockERC1271Wallet sc = new MockERC1271Wallet(alice);
        sc.setRejectEth(true);
        vm.prank(alice);
        reg.stake{value: 1 ether}();
        vm.prank(escrow);
        reg.slash(alice, 1 ether, address(sc));
        vm.expectRevert(AgentRegistry.EthTransferFailed.selector);
        sc.execute(address(reg), 0, abi.encodeCall(AgentRegistry.withdrawSlashed, ()));
    }

    function test_RevertWhen_SlashNotEscrow() public {
        vm.prank(alice);
        reg.stake{value: 1 ether}();
        vm.prank(admin); // not even the owner
        vm.expectRevert(AgentRegistry.NotEscrow.selector);
        reg.slash(alice, 1 ether, bob);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.NotEscrow.selector);
        reg.slash(alice, 1 ether, alice);
    }

    function test_RevertWhen_SlashBeforeEscrowSet() public {
        AgentRegistry r = new AgentRegistry(admin, DELAY);
        vm.prank(alice);
        vm.expectRevert(AgentRegistry.NotEscrow.selector);
        r.slash(alice, 1, bob);
        vm.prank(address(0)); // even a zero-address caller cannot use an unset escrow
        vm.expectRevert(AgentRegistry.NotEscrow.selector);
        r.slash(alice, 1, bob);
    }

    function test_RevertWhen_SlashToZero() public {
        vm.prank(escrow);
        vm.expectRevert(AgentRegistry.ZeroAddress.selector);
        reg.slash(alice, 1, address(0));
    }

    function test_StakeRegistryInterface() public {
        vm.prank(alice);
        reg.stake{value: 1 ether}();
        IStakeRegistry s = IStakeRegistry(address(reg));
        assertEq(s.stakeOf(alice), 1 ether);
        vm.prank(escrow);
        assertEq(s.slash(alice, 0.5 ether, bob), 0.5 ether);
    }

    // ================================================================== fuzz

    function testFuzz_StakeUnbondSlash(uint96 staked, uint96 unbond, uint96 slashAmt) public {
        staked = uint96(bound(staked, 1, 50 ether));
        unbond = uint96(bound(unbond, 0, staked));
        vm.startPrank(alice);
        reg.stake{value: staked}();
        if (unbond != 0) reg.requestUnbond(unbond);
        vm.stopPrank();

        uint256 bobBefore = bob.balance;
        vm.prank(escrow);
        uint256 slashed = reg.slash(alice, slashAmt, bob);
        uint256 expected = slashAmt < staked ? slashAmt : staked;
        assertEq(slashed, expected);
        assertEq(bob.balance - bobBefore, expected);
        uint256 bondedLeft = staked - unbond;
        uint256 fromBonded = expected < bondedLeft ? expected : bondedLeft;
        assertEq(reg.stakeOf(alice), bondedLeft - fromBonded);
        (uint256 unbondingLeft,) = reg.unbondingOf(alice);
        assertEq(unbondingLeft, unbond - (expected - fromBonded));
        assertEq(address(reg).balance, reg.stakeOf(alice) + unbondingLeft);
    }

    function testFuzz_SetAgentWalletDeadline(uint256 deadline, uint256 elapsed) public {
        uint256 id = _register(alice);
        deadline = bound(deadline, block.timestamp, block.timestamp + 1 days);
        elapsed = bound(elapsed, 0, 1 days);
        bytes memory sig = _walletSig(walletKey, id, wallet, alice, deadline);
        vm.warp(block.timestamp + elapsed);
        uint256 maxDelay = reg.MAX_DEADLINE_DELAY();
        vm.prank(alice);
        if (block.timestamp > deadline) {
            vm.expectRevert(AgentRegistry.SignatureExpired.selector);
        } else if (deadline > block.timestamp + maxDelay) {
            vm.expectRevert(AgentRegistry.DeadlineTooFar.selector);
        }
        reg.setAgentWallet(id, wallet, deadline, sig);
    }

    function testFuzz_SetAgentWalletRandomKey(uint256 key) public {
        key = bound(key, 1, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140);
        uint256 id = _register(alice);
        address w = vm.addr(key);
        uint256 deadline = block.timestamp + 60;
        bytes memory sig = _walletSig(key, id, w, alice, deadline);
        vm.prank(alice);
        reg.setAgentWallet(id, w, deadline, sig);
        assertEq(reg.getAgentWallet(id), w);
    }

    function testFuzz_MetadataRoundTrip(string calldata key, bytes calldata value) public {
        vm.assume(keccak256(bytes(key)) != keccak256("agentWallet"));
        uint256 id = _register(alice);
        vm.prank(alice);
        reg.setMetadata(id, key, value);
        assertEq(reg.getMetadata(id, key), value);
    }
}
