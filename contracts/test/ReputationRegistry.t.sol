// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {ReputationRegistry} from "../src/ReputationRegistry.sol";
import {AgentRegistry} from "../src/AgentRegistry.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {MockBountyLedger} from "./mocks/MockBountyLedger.sol";

contract ReputationRegistryTest is Test {
    event NewFeedback(
        uint256 indexed agentId,
        address indexed clientAddress,
        uint64 feedbackIndex,
        int128 value,
        uint8 valueDecimals,
        string indexed indexedTag1,
        string tag1,
        string tag2,
        string endpoint,
        string feedbackURI,
        bytes32 feedbackHash
    );
    event FeedbackRevoked(
        uint256 indexed agentId, address indexed clientAddress, uint64 indexed feedbackIndex
    );
    event ResponseAppended(
        uint256 indexed agentId,
        address indexed clientAddress,
        uint64 feedbackIndex,
        address indexed responder,
        string responseURI,
        bytes32 responseHash
    );
    event FeedbackAuthorized(uint256 indexed bountyId, address indexed client, address indexed provider);

    ReputationRegistry internal rep;
    AgentRegistry internal ids;
    MockBountyLedger internal ledger;

    address internal agentOwner = makeAddr("agentOwner");
    uint256 internal agentWalletKey = 0xA6E27;
    address internal agentWallet;
    address internal client = makeAddr("client");
    address internal client2 = makeAddr("client2");
    address internal operator = makeAddr("operator");
    address internal stranger = makeAddr("stranger");
    uint256 internal agentId;
    uint256 internal nextBountyId = 1;

    function setUp() public {
        ids = new AgentRegistry(address(this), 1 days);
        ledger = new MockBountyLedger();
        rep = new ReputationRegistry(address(ids), address(ledger));
        agentWallet = vm.addr(agentWalletKey);

        vm.prank(agentOwner);
        agentId = ids.register("ipfs://agent");
        // point the agent's wallet at a separate key
        uint256 deadline = block.timestamp + 60;
        bytes32 digest = keccak256(
            abi.encodePacked(
                "\x19\x01",
                ids.domainSeparator(),
                keccak256(
                    abi.encode(ids.AGENT_WALLET_SET_TYPEHASH(), agentId, agentWallet, agentOwner, deadline)
                )
            )
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(agentWalletKey, digest);
        vm.prank(agentOwner);
        ids.setAgentWallet(agentId, agentWallet, deadline, abi.encodePacked(r, s, v));
    }

    // ------------------------------------------------------------------ helpers

    function _bounty(address poster, address provider) internal pure returns (IBountyTypes.Bounty memory b) {
        b.poster = poster;
        b.provider = provider;
        b.amount = 1 ether;
        b.price = 1 ether;
        b.evaluator = poster;
        b.deadline = 1000;
        b.specHash = keccak256("spec");
        b.resultHash = keccak256("result");
    }

    function _finished(address poster, address provider, IBountyTypes.Status status)
        internal
        returns (uint256 bountyId, IBountyTypes.Bounty memory b)
    {
        bountyId = nextBountyId++;
        b = _bounty(poster, provider);
        ledger.setRecord(bountyId, b, status);
    }

    function _credit(address poster, address provider) internal returns (uint256 bountyId) {
        IBountyTypes.Bounty memory b;
        (bountyId, b) = _finished(poster, provider, IBountyTypes.Status.Completed);
        rep.authorizeFeedback(bountyId, b);
    }

    function _give(address from, int128 value, uint8 decimals, string memory tag1, string memory tag2)
        internal
    {
        vm.prank(from);
        rep.giveFeedback(agentId, value, decimals, tag1, tag2, "", "", bytes32(0));
    }

    function _creditAndGive(
        address from,
        int128 value,
        uint8 decimals,
        string memory tag1,
        string memory tag2
    ) internal {
        _credit(from, agentWallet);
        _give(from, value, decimals, tag1, tag2);
    }

    function _one(address a) internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = a;
    }

    // ------------------------------------------------------------------ constructor / views

    function test_Constructor() public view {
        assertEq(rep.getIdentityRegistry(), address(ids));
        assertEq(address(rep.ledger()), address(ledger));
    }

    function test_RevertWhen_ConstructorZeroAddress() public {
        vm.expectRevert(ReputationRegistry.ZeroAddress.selector);
        new ReputationRegistry(address(0), address(ledger));
        vm.expectRevert(ReputationRegistry.ZeroAddress.selector);
        new ReputationRegistry(address(ids), address(0));
    }

    // ------------------------------------------------------------------ authorizeFeedback

    function test_AuthorizeFeedback_Completed() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(client, agentWallet, IBountyTypes.Status.Completed);
        vm.expectEmit(address(rep));
        emit FeedbackAuthorized(bountyId, client, agentWallet);
        vm.prank(stranger); // anyone may call
        rep.authorizeFeedback(bountyId, b);
        assertEq(rep.feedbackCredits(client, agentWallet), 1);
        assertTrue(rep.bountyCredited(bountyId));
    }

    function test_AuthorizeFeedback_RefundedAndResolved() public {
        (uint256 id1, IBountyTypes.Bounty memory b1) =
            _finished(client, agentWallet, IBountyTypes.Status.Refunded);
        (uint256 id2, IBountyTypes.Bounty memory b2) =
            _finished(client, agentWallet, IBountyTypes.Status.Resolved);
        rep.authorizeFeedback(id1, b1);
        rep.authorizeFeedback(id2, b2);
        assertEq(rep.feedbackCredits(client, agentWallet), 2);
    }

    function test_RevertWhen_AuthorizeFeedbackNotFinal() public {
        IBountyTypes.Status[9] memory bad = [
            IBountyTypes.Status.None,
            IBountyTypes.Status.Open,
            IBountyTypes.Status.Funded,
            IBountyTypes.Status.Awarded,
            IBountyTypes.Status.Submitted,
            IBountyTypes.Status.Rejected,
            IBountyTypes.Status.Expired,
            IBountyTypes.Status.Disputed,
            IBountyTypes.Status.Cancelled
        ];
        for (uint256 i; i < bad.length; ++i) {
            (uint256 bountyId, IBountyTypes.Bounty memory b) = _finished(client, agentWallet, bad[i]);
            vm.expectRevert(abi.encodeWithSelector(ReputationRegistry.BountyNotFinal.selector, bad[i]));
            rep.authorizeFeedback(bountyId, b);
        }
    }

    function test_RevertWhen_AuthorizeFeedbackRecordMismatch() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(client, agentWallet, IBountyTypes.Status.Completed);
        b.poster = stranger; // forged record
        vm.expectRevert(MockBountyLedger.BountyMismatch.selector);
        rep.authorizeFeedback(bountyId, b);
    }

    function test_RevertWhen_AuthorizeFeedbackNoProvider() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(client, address(0), IBountyTypes.Status.Completed);
        vm.expectRevert(ReputationRegistry.NoProvider.selector);
        rep.authorizeFeedback(bountyId, b);
    }

    function test_RevertWhen_AuthorizeFeedbackPosterIsProvider() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(agentWallet, agentWallet, IBountyTypes.Status.Completed);
        vm.expectRevert(ReputationRegistry.SelfFeedback.selector);
        rep.authorizeFeedback(bountyId, b);
    }

    function test_RevertWhen_AuthorizeFeedbackTwice() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(client, agentWallet, IBountyTypes.Status.Completed);
        rep.authorizeFeedback(bountyId, b);
        vm.expectRevert(ReputationRegistry.BountyAlreadyCredited.selector);
        rep.authorizeFeedback(bountyId, b);
    }

    // ------------------------------------------------------------------ giveFeedback

    function test_GiveFeedback_CreditForAgentWallet() public {
        _credit(client, agentWallet);
        vm.expectEmit(address(rep));
        emit NewFeedback(
            agentId, client, 1, 87, 0, "starred", "starred", "", "https://x/e", "ipfs://f", bytes32("h")
        );
        vm.prank(client);
        rep.giveFeedback(agentId, 87, 0, "starred", "", "https://x/e", "ipfs://f", bytes32("h"));
        assertEq(rep.feedbackCredits(client, agentWallet), 0);
        assertEq(rep.getLastIndex(agentId, client), 1);
        (int128 value, uint8 dec, string memory t1, string memory t2, bool revoked) =
            rep.readFeedback(agentId, client, 1);
        assertEq(value, 87);
        assertEq(dec, 0);
        assertEq(t1, "starred");
        assertEq(t2, "");
        assertFalse(revoked);
        assertEq(rep.getClients(agentId).length, 1);
        assertEq(rep.getClients(agentId)[0], client);
    }

    function test_GiveFeedback_CreditForOwner() public {
        _credit(client, agentOwner);
        _give(client, -5, 1, "", "");
        assertEq(rep.feedbackCredits(client, agentOwner), 0);
        assertEq(rep.getLastIndex(agentId, client), 1);
    }

    function test_GiveFeedback_OwnerCreditConsumedFirst() public {
        _credit(client, agentOwner);
        _credit(client, agentWallet);
        _give(client, 1, 0, "", "");
        assertEq(rep.feedbackCredits(client, agentOwner), 0);
        assertEq(rep.feedbackCredits(client, agentWallet), 1);
        _give(client, 2, 0, "", "");
        assertEq(rep.feedbackCredits(client, agentWallet), 0);
        assertEq(rep.getLastIndex(agentId, client), 2);
        assertEq(rep.getClients(agentId).length, 1, "client listed once");
    }

    function test_RevertWhen_GiveFeedbackWithoutCredit() public {
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.NoFeedbackCredit.selector);
        rep.giveFeedback(agentId, 1, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackCreditAlreadyUsed() public {
        _creditAndGive(client, 1, 0, "", "");
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.NoFeedbackCredit.selector);
        rep.giveFeedback(agentId, 1, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackCreditForOtherProvider() public {
        _credit(client, stranger);
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.NoFeedbackCredit.selector);
        rep.giveFeedback(agentId, 1, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackWalletCreditAfterTransfer() public {
        _credit(client, agentWallet);
        vm.prank(agentOwner);
        ids.transferFrom(agentOwner, stranger, agentId); // clears agentWallet
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.NoFeedbackCredit.selector);
        rep.giveFeedback(agentId, 1, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackByOwner() public {
        _credit(agentOwner, agentWallet);
        vm.prank(agentOwner);
        vm.expectRevert(ReputationRegistry.SelfFeedback.selector);
        rep.giveFeedback(agentId, 100, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackByAgentWallet() public {
        _credit(agentWallet, agentOwner);
        vm.prank(agentWallet);
        vm.expectRevert(ReputationRegistry.SelfFeedback.selector);
        rep.giveFeedback(agentId, 100, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackByOperator() public {
        _credit(operator, agentWallet);
        vm.prank(agentOwner);
        ids.setApprovalForAll(operator, true);
        vm.prank(operator);
        vm.expectRevert(ReputationRegistry.SelfFeedback.selector);
        rep.giveFeedback(agentId, 100, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackByApproved() public {
        _credit(operator, agentWallet);
        vm.prank(agentOwner);
        ids.approve(operator, agentId);
        vm.prank(operator);
        vm.expectRevert(ReputationRegistry.SelfFeedback.selector);
        rep.giveFeedback(agentId, 100, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackUnknownAgent() public {
        _credit(client, agentWallet);
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.AgentNotFound.selector);
        rep.giveFeedback(999, 1, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackTooManyDecimals() public {
        _credit(client, agentWallet);
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.InvalidValueDecimals.selector);
        rep.giveFeedback(agentId, 1, 19, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveFeedbackValueOutOfRange() public {
        _credit(client, agentWallet);
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.ValueOutOfRange.selector);
        rep.giveFeedback(agentId, 1e38 + 1, 0, "", "", "", "", bytes32(0));
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.ValueOutOfRange.selector);
        rep.giveFeedback(agentId, -1e38 - 1, 0, "", "", "", "", bytes32(0));
    }

    // ------------------------------------------------------------------ giveBountyFeedback

    function test_GiveBountyFeedback_OneTransaction() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(client, agentWallet, IBountyTypes.Status.Refunded);
        vm.expectEmit(address(rep));
        emit FeedbackAuthorized(bountyId, client, agentWallet);
        vm.expectEmit(address(rep));
        emit NewFeedback(agentId, client, 1, 10, 0, "quality", "quality", "bad", "", "ipfs://why", bytes32(0));
        vm.prank(client);
        rep.giveBountyFeedback(bountyId, b, agentId, 10, 0, "quality", "bad", "", "ipfs://why", bytes32(0));
        assertTrue(rep.bountyCredited(bountyId));
        assertEq(rep.feedbackCredits(client, agentWallet), 0);
        assertEq(rep.getLastIndex(agentId, client), 1);
    }

    function test_RevertWhen_GiveBountyFeedbackNotPoster() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(client, agentWallet, IBountyTypes.Status.Completed);
        vm.prank(stranger);
        vm.expectRevert(ReputationRegistry.NotPoster.selector);
        rep.giveBountyFeedback(bountyId, b, agentId, 10, 0, "", "", "", "", bytes32(0));
    }

    function test_RevertWhen_GiveBountyFeedbackProviderNotAgent() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(client, stranger, IBountyTypes.Status.Completed);
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.NoFeedbackCredit.selector);
        rep.giveBountyFeedback(bountyId, b, agentId, 10, 0, "", "", "", "", bytes32(0));
        assertFalse(rep.bountyCredited(bountyId), "whole call reverted");
    }

    function test_RevertWhen_GiveBountyFeedbackAlreadyCredited() public {
        (uint256 bountyId, IBountyTypes.Bounty memory b) =
            _finished(client, agentWallet, IBountyTypes.Status.Completed);
        rep.authorizeFeedback(bountyId, b);
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.BountyAlreadyCredited.selector);
        rep.giveBountyFeedback(bountyId, b, agentId, 10, 0, "", "", "", "", bytes32(0));
    }

    // ------------------------------------------------------------------ revoke / respond

    function test_RevokeFeedback() public {
        _creditAndGive(client, 50, 0, "", "");
        vm.expectEmit(address(rep));
        emit FeedbackRevoked(agentId, client, 1);
        vm.prank(client);
        rep.revokeFeedback(agentId, 1);
        (,,,, bool revoked) = rep.readFeedback(agentId, client, 1);
        assertTrue(revoked);
    }

    function test_RevertWhen_RevokeFeedbackIndexZero() public {
        _creditAndGive(client, 50, 0, "", "");
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.FeedbackNotFound.selector);
        rep.revokeFeedback(agentId, 0);
    }

    function test_RevertWhen_RevokeFeedbackOfOtherClient() public {
        _creditAndGive(client, 50, 0, "", "");
        vm.prank(client2);
        vm.expectRevert(ReputationRegistry.FeedbackNotFound.selector);
        rep.revokeFeedback(agentId, 1);
    }

    function test_RevertWhen_RevokeFeedbackTwice() public {
        _creditAndGive(client, 50, 0, "", "");
        vm.startPrank(client);
        rep.revokeFeedback(agentId, 1);
        vm.expectRevert(ReputationRegistry.AlreadyRevoked.selector);
        rep.revokeFeedback(agentId, 1);
        vm.stopPrank();
    }

    function test_AppendResponse() public {
        _creditAndGive(client, 50, 0, "", "");
        vm.expectEmit(address(rep));
        emit ResponseAppended(agentId, client, 1, agentOwner, "ipfs://refund", bytes32("r"));
        vm.prank(agentOwner);
        rep.appendResponse(agentId, client, 1, "ipfs://refund", bytes32("r"));
        vm.prank(agentOwner);
        rep.appendResponse(agentId, client, 1, "ipfs://again", bytes32(0));
        vm.prank(stranger);
        rep.appendResponse(agentId, client, 1, "ipfs://spam-tag", bytes32(0));

        address[] memory none = new address[](0);
        assertEq(rep.getResponseCount(agentId, client, 1, none), 3);
        assertEq(rep.getResponseCount(agentId, client, 1, _one(agentOwner)), 2);
        assertEq(rep.getResponseCount(agentId, client, 0, none), 3);
        assertEq(rep.getResponseCount(agentId, address(0), 0, _one(stranger)), 1);
    }

    function test_RevertWhen_AppendResponseUnknownFeedback() public {
        vm.expectRevert(ReputationRegistry.FeedbackNotFound.selector);
        rep.appendResponse(agentId, client, 1, "ipfs://x", bytes32(0));
        _creditAndGive(client, 50, 0, "", "");
        vm.expectRevert(ReputationRegistry.FeedbackNotFound.selector);
        rep.appendResponse(agentId, client, 0, "ipfs://x", bytes32(0));
    }

    function test_RevertWhen_AppendResponseEmptyUri() public {
        _creditAndGive(client, 50, 0, "", "");
        vm.expectRevert(ReputationRegistry.EmptyResponseURI.selector);
        rep.appendResponse(agentId, client, 1, "", bytes32(0));
    }

    // ------------------------------------------------------------------ reads

    function test_GetSummary_AverageAndFilters() public {
        _creditAndGive(client, 80, 0, "starred", "a");
        _creditAndGive(client, 90, 0, "starred", "b");
        _creditAndGive(client2, 9977, 2, "uptime", "");
        _creditAndGive(client2, 60, 0, "starred", "a");

        address[] memory both = new address[](2);
        both[0] = client;
        both[1] = client2;
        (uint64 count, int128 value, uint8 dec) = rep.getSummary(agentId, both, "starred", "");
        assertEq(count, 3);
        assertEq(value, 76); // (80 + 90 + 60) / 3, truncated
        assertEq(dec, 0);

        (count, value, dec) = rep.getSummary(agentId, both, "starred", "a");
        assertEq(count, 2);
        assertEq(value, 70);

        (count, value, dec) = rep.getSummary(agentId, _one(client2), "", "");
        assertEq(count, 2);
        // (99.77 + 60) / 2 = 79.885; decimals: mode of {2, 0} ties → smaller = 0 → 79
        assertEq(dec, 0);
        assertEq(value, 79);

        // revoked feedback is excluded
        vm.prank(client);
        rep.revokeFeedback(agentId, 2);
        (count, value,) = rep.getSummary(agentId, _one(client), "", "");
        assertEq(count, 1);
        assertEq(value, 80);
    }

    function test_GetSummary_ModeDecimals() public {
        _creditAndGive(client, 9977, 2, "", "");
        _creditAndGive(client, 9900, 2, "", "");
        _creditAndGive(client, 100, 0, "", "");
        (uint64 count, int128 value, uint8 dec) = rep.getSummary(agentId, _one(client), "", "");
        assertEq(count, 3);
        assertEq(dec, 2);
        assertEq(value, 9959); // (99.77 + 99.00 + 100) / 3 = 99.59
    }

    function test_GetSummary_NegativeValues() public {
        _creditAndGive(client, -32, 1, "yield", "");
        _creditAndGive(client, -8, 1, "yield", "");
        (uint64 count, int128 value, uint8 dec) = rep.getSummary(agentId, _one(client), "yield", "");
        assertEq(count, 2);
        assertEq(value, -20);
        assertEq(dec, 1);
    }

    function test_GetSummary_NoMatchesIsZero() public view {
        (uint64 count, int128 value, uint8 dec) = rep.getSummary(agentId, _one(client), "", "");
        assertEq(count, 0);
        assertEq(value, 0);
        assertEq(dec, 0);
    }

    function test_RevertWhen_GetSummaryWithoutClients() public {
        vm.expectRevert(ReputationRegistry.ClientAddressesRequired.selector);
        rep.getSummary(agentId, new address[](0), "", "");
    }

    function test_GetSummary_ReducesDecimalsWhenAverageOverflowsInt128() public {
        // mode = 18 decimals, but the average (~3.3e37 at 0 decimals) does not fit int128 at 18
        _creditAndGive(client, 1e38, 0, "", "");
        _creditAndGive(client, 1, 18, "", "");
        _creditAndGive(client, 1, 18, "", "");
        (uint64 count, int128 value, uint8 dec) = rep.getSummary(agentId, _one(client), "", "");
        assertEq(count, 3);
        int256 avgWad = (int256(1e56) + 2) / 3;
        assertEq(int256(value), avgWad / int256(10 ** uint256(18 - dec)));
        assertLt(dec, 18);
        assertEq(dec, 0); // 3.3e38 at 1 decimal still exceeds int128.max (1.7e38)
    }

    function test_RevertWhen_ReadFeedbackOutOfRange() public {
        vm.expectRevert(ReputationRegistry.FeedbackNotFound.selector);
        rep.readFeedback(agentId, client, 1);
        _creditAndGive(client, 1, 0, "", "");
        vm.expectRevert(ReputationRegistry.FeedbackNotFound.selector);
        rep.readFeedback(agentId, client, 0);
        vm.expectRevert(ReputationRegistry.FeedbackNotFound.selector);
        rep.readFeedback(agentId, client, 2);
    }

    function test_ReadAllFeedback() public {
        _creditAndGive(client, 1, 0, "a", "x");
        _creditAndGive(client, 2, 1, "b", "y");
        _creditAndGive(client2, 3, 2, "a", "z");
        vm.prank(client);
        rep.revokeFeedback(agentId, 1);

        (
            address[] memory clients,
            uint64[] memory idx,
            int128[] memory values,
            uint8[] memory decs,
            string[] memory tag1s,
            string[] memory tag2s,
            bool[] memory revoked
        ) = rep.readAllFeedback(agentId, new address[](0), "", "", false);
        assertEq(clients.length, 2);
        assertEq(clients[0], client);
        assertEq(idx[0], 2);
        assertEq(values[0], 2);
        assertEq(decs[0], 1);
        assertEq(tag1s[0], "b");
        assertEq(tag2s[0], "y");
        assertFalse(revoked[0]);
        assertEq(clients[1], client2);
        assertEq(values[1], 3);

        (clients, idx, values,,,, revoked) = rep.readAllFeedback(agentId, _one(client), "a", "", true);
        assertEq(clients.length, 1);
        assertEq(idx[0], 1);
        assertEq(values[0], 1);
        assertTrue(revoked[0]);

        (clients,,,,,,) = rep.readAllFeedback(agentId, new address[](0), "", "z", true);
        assertEq(clients.length, 1);
        assertEq(clients[0], client2);
    }

    function test_GetClientsAndLastIndex() public {
        assertEq(rep.getClients(agentId).length, 0);
        assertEq(rep.getLastIndex(agentId, client), 0);
        _creditAndGive(client, 1, 0, "", "");
        _creditAndGive(client2, 1, 0, "", "");
        _creditAndGive(client, 1, 0, "", "");
        address[] memory clients = rep.getClients(agentId);
        assertEq(clients.length, 2);
        assertEq(clients[0], client);
        assertEq(clients[1], client2);
        assertEq(rep.getLastIndex(agentId, client), 2);
        assertEq(rep.getLastIndex(agentId, client2), 1);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_GiveFeedbackValueAndDecimals(int128 value, uint8 decimals) public {
        _credit(client, agentWallet);
        vm.prank(client);
        bool inRange = value <= 1e38 && value >= -1e38;
        if (decimals > 18) {
            vm.expectRevert(ReputationRegistry.InvalidValueDecimals.selector);
        } else if (!inRange) {
            vm.expectRevert(ReputationRegistry.ValueOutOfRange.selector);
        }
        rep.giveFeedback(agentId, value, decimals, "", "", "", "", bytes32(0));
        if (decimals <= 18 && inRange) {
            (int128 v, uint8 d,,,) = rep.readFeedback(agentId, client, 1);
            assertEq(v, value);
            assertEq(d, decimals);
            (uint64 count, int128 s, uint8 sd) = rep.getSummary(agentId, _one(client), "", "");
            assertEq(count, 1);
            assertEq(s, value);
            assertEq(sd, decimals);
        }
    }

    function testFuzz_SummaryAverageSameDecimals(int64[5] memory values) public {
        int256 sum;
        for (uint256 i; i < values.length; ++i) {
            _creditAndGive(client, values[i], 3, "", "");
            sum += values[i];
        }
        (uint64 count, int128 avg, uint8 dec) = rep.getSummary(agentId, _one(client), "", "");
        assertEq(count, 5);
        assertEq(dec, 3);
        assertEq(avg, int128(sum / 5));
    }

    function testFuzz_OneCreditPerBounty(uint8 bounties) public {
        bounties = uint8(bound(bounties, 1, 10));
        for (uint256 i; i < bounties; ++i) {
            _credit(client, agentWallet);
        }
        for (uint256 i; i < bounties; ++i) {
            _give(client, 1, 0, "", "");
        }
        vm.prank(client);
        vm.expectRevert(ReputationRegistry.NoFeedbackCredit.selector);
        rep.giveFeedback(agentId, 1, 0, "", "", "", "", bytes32(0));
        assertEq(rep.getLastIndex(agentId, client), bounties);
    }
}
