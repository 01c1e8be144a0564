// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {ValidationRegistry} from "../src/ValidationRegistry.sol";
import {IERC8004Validation} from "../src/interfaces/IERC8004Validation.sol";
import {AgentRegistry} from "../src/AgentRegistry.sol";
import {IBountyTypes} from "../src/interfaces/IBountyTypes.sol";
import {MockBountyLedger} from "./mocks/MockBountyLedger.sol";

contract ValidationRegistryTest is Test {
    event ValidationRequest(
        address indexed validatorAddress,
        uint256 indexed agentId,
        string requestURI,
        bytes32 indexed requestHash
    );
    event ValidationResponse(
        address indexed validatorAddress,
        uint256 indexed agentId,
        bytes32 indexed requestHash,
        uint8 response,
        string responseURI,
        bytes32 responseHash,
        string tag
    );
    event BountyValidationRecorded(
        uint256 indexed bountyId, uint256 indexed agentId, bytes32 indexed requestHash
    );

    ValidationRegistry internal val;
    AgentRegistry internal ids;
    MockBountyLedger internal ledger;

    address internal agentOwner = makeAddr("agentOwner");
    uint256 internal agentWalletKey = 0xA6E27;
    address internal agentWallet;
    address internal operator = makeAddr("operator");
    address internal validator = makeAddr("validator");
    address internal validator2 = makeAddr("validator2");
    address internal poster = makeAddr("poster");
    address internal verifier = makeAddr("verifier");
    address internal stranger = makeAddr("stranger");
    uint256 internal agentId;
    uint256 internal nextBountyId = 1;

    function setUp() public {
        ids = new AgentRegistry(address(this), 1 days);
        ledger = new MockBountyLedger();
        val = new ValidationRegistry(address(ids), address(ledger));
        agentWallet = vm.addr(agentWalletKey);

        vm.prank(agentOwner);
        agentId = ids.register("ipfs://agent");
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

    function _bounty(address provider) internal view returns (IBountyTypes.Bounty memory b) {
        b.poster = poster;
        b.provider = provider;
        b.evaluator = verifier;
        b.amount = 1 ether;
        b.price = 1 ether;
        b.deadline = 1000;
        b.specHash = keccak256("spec");
        b.resultHash = keccak256("result");
    }

    function _final(address provider, IBountyTypes.Status status)
        internal
        returns (uint256 bountyId, IBountyTypes.Bounty memory b)
    {
        bountyId = nextBountyId++;
        b = _bounty(provider);
        ledger.setRecord(bountyId, b, status);
    }

    function _request(bytes32 h) internal {
        vm.prank(agentOwner);
        val.validationRequest(validator, agentId, "ipfs://work", h);
    }

    function _one(address a) internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = a;
    }

    // ------------------------------------------------------------------ ABI: ERC-8004 v1.0

    /// The selectors and event topics are those of the spec's signatures, character for character.
    function test_AbiMatchesErc8004() public pure {
        assertEq(
            IERC8004Validation.validationRequest.selector,
            bytes4(keccak256("validationRequest(address,uint256,string,bytes32)"))
        );
        assertEq(
            IERC8004Validation.validationResponse.selector,
            bytes4(keccak256("validationResponse(bytes32,uint8,string,bytes32,string)"))
        );
        assertEq(
            IERC8004Validation.getValidationStatus.selector, bytes4(keccak256("getValidationStatus(bytes32)"))
        );
        assertEq(
            IERC8004Validation.getSummary.selector, bytes4(keccak256("getSummary(uint256,address[],string)"))
        );
        assertEq(
            IERC8004Validation.getAgentValidations.selector, bytes4(keccak256("getAgentValidations(uint256)"))
        );
        assertEq(
            IERC8004Validation.getValidatorRequests.selector,
            bytes4(keccak256("getValidatorRequests(address)"))
        );
        assertEq(IERC8004Validation.getIdentityRegistry.selector, bytes4(keccak256("getIdentityRegistry()")));
        assertEq(
            IERC8004Validation.ValidationRequest.selector,
            keccak256("ValidationRequest(address,uint256,string,bytes32)")
        );
        assertEq(
            IERC8004Validation.ValidationResponse.selector,
            keccak256("ValidationResponse(address,uint256,bytes32,uint8,string,bytes32,string)")
        );
    }

    function test_Constructor() public view {
        assertEq(val.getIdentityRegistry(), address(ids));
        assertEq(address(val.ledger()), address(ledger));
    }

    function test_RevertWhen_ConstructorZeroAddress() public {
        vm.expectRevert(ValidationRegistry.ZeroAddress.selector);
        new ValidationRegistry(address(0), address(ledger));
        vm.expectRevert(ValidationRegistry.ZeroAddress.selector);
        new ValidationRegistry(address(ids), address(0));
    }

    // ------------------------------------------------------------------ validationRequest

    function test_Request_ByOwner() public {
        bytes32 h = keccak256("work-1");
        vm.expectEmit(address(val));
        emit ValidationRequest(validator, agentId, "ipfs://work", h);
        _request(h);

        (address v, uint256 a, uint8 resp, bytes32 rh, string memory tag, uint256 last) =
            val.getValidationStatus(h);
        assertEq(v, validator);
        assertEq(a, agentId);
        assertEq(resp, 0);
        assertEq(rh, bytes32(0));
        assertEq(tag, "");
        assertEq(last, 0);
        assertEq(val.getAgentValidations(agentId).length, 1);
        assertEq(val.getValidatorRequests(validator)[0], h);
        // Not answered yet: not counted.
        (uint64 count,) = val.getSummary(agentId, new address[](0), "");
        assertEq(count, 0);
    }

    function test_Request_ByApprovedAndOperator() public {
        vm.prank(agentOwner);
        ids.approve(operator, agentId);
        vm.prank(operator);
        val.validationRequest(validator, agentId, "", keccak256("a"));

        vm.prank(agentOwner);
        ids.setApprovalForAll(stranger, true);
        vm.prank(stranger);
        val.validationRequest(validator, agentId, "", keccak256("b"));
        assertEq(val.getAgentValidations(agentId).length, 2);
    }

    function test_RevertWhen_RequestByStrangerOrWallet() public {
        vm.prank(stranger);
        vm.expectRevert(ValidationRegistry.NotAgentOperator.selector);
        val.validationRequest(validator, agentId, "", keccak256("a"));
        // The payment wallet is not an operator of the identity.
        vm.prank(agentWallet);
        vm.expectRevert(ValidationRegistry.NotAgentOperator.selector);
        val.validationRequest(validator, agentId, "", keccak256("a"));
    }

    function test_RevertWhen_RequestUnknownAgentOrZeroValidator() public {
        vm.prank(agentOwner);
        vm.expectRevert(ValidationRegistry.AgentNotFound.selector);
        val.validationRequest(validator, 999, "", keccak256("a"));
        vm.prank(agentOwner);
        vm.expectRevert(ValidationRegistry.ZeroAddress.selector);
        val.validationRequest(address(0), agentId, "", keccak256("a"));
    }

    function test_RevertWhen_RequestHashReused() public {
        bytes32 h = keccak256("a");
        _request(h);
        vm.prank(agentOwner);
        vm.expectRevert(abi.encodeWithSelector(ValidationRegistry.RequestExists.selector, h));
        val.validationRequest(validator2, agentId, "", h);
    }

    // ------------------------------------------------------------------ validationResponse

    function test_Response_ThenUpdated() public {
        bytes32 h = keccak256("a");
        _request(h);
        vm.warp(5000);
        vm.expectEmit(address(val));
        emit ValidationResponse(validator, agentId, h, 40, "ipfs://soft", keccak256("e1"), "soft-finality");
        vm.prank(validator);
        val.validationResponse(h, 40, "ipfs://soft", keccak256("e1"), "soft-finality");

        vm.warp(6000);
        vm.prank(validator);
        val.validationResponse(h, 90, "ipfs://hard", keccak256("e2"), "hard-finality");
        (,, uint8 resp, bytes32 rh, string memory tag, uint256 last) = val.getValidationStatus(h);
        assertEq(resp, 90);
        assertEq(rh, keccak256("e2"));
        assertEq(tag, "hard-finality");
        assertEq(last, 6000);
        // Counted once, with its latest response.
        (uint64 count, uint8 avg) = val.getSummary(agentId, new address[](0), "");
        assertEq(count, 1);
        assertEq(avg, 90);
    }

    function test_Response_ZeroIsAnAnswer() public {
        bytes32 h = keccak256("a");
        _request(h);
        vm.prank(validator);
        val.validationResponse(h, 0, "", bytes32(0), "");
        (uint64 count, uint8 avg) = val.getSummary(agentId, new address[](0), "");
        assertEq(count, 1);
        assertEq(avg, 0);
    }

    function test_RevertWhen_ResponseByOther() public {
        bytes32 h = keccak256("a");
        _request(h);
        vm.prank(agentOwner);
        vm.expectRevert(ValidationRegistry.NotValidator.selector);
        val.validationResponse(h, 100, "", bytes32(0), "");
    }

    function test_RevertWhen_ResponseUnknownOrOutOfRange() public {
        bytes32 h = keccak256("a");
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(ValidationRegistry.RequestNotFound.selector, h));
        val.validationResponse(h, 100, "", bytes32(0), "");
        vm.expectRevert(abi.encodeWithSelector(ValidationRegistry.RequestNotFound.selector, h));
        val.getValidationStatus(h);

        _request(h);
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(ValidationRegistry.ResponseOutOfRange.selector, uint8(101)));
        val.validationResponse(h, 101, "", bytes32(0), "");
    }

    // ------------------------------------------------------------------ getSummary filters

    function test_Summary_FiltersByValidatorAndTag() public {
        bytes32 h1 = keccak256("1");
        bytes32 h2 = keccak256("2");
        bytes32 h3 = keccak256("3");
        _request(h1);
        _request(h2);
        vm.prank(agentOwner);
        val.validationRequest(validator2, agentId, "", h3);
        vm.prank(validator);
        val.validationResponse(h1, 100, "", bytes32(0), "zk");
        vm.prank(validator);
        val.validationResponse(h2, 50, "", bytes32(0), "tee");
        vm.prank(validator2);
        val.validationResponse(h3, 20, "", bytes32(0), "zk");

        (uint64 c, uint8 a) = val.getSummary(agentId, new address[](0), "");
        assertEq(c, 3);
        assertEq(a, 56); // (100 + 50 + 20) / 3, rounded down
        (c, a) = val.getSummary(agentId, _one(validator), "");
        assertEq(c, 2);
        assertEq(a, 75);
        (c, a) = val.getSummary(agentId, new address[](0), "zk");
        assertEq(c, 2);
        assertEq(a, 60);
        (c, a) = val.getSummary(agentId, _one(validator2), "tee");
        assertEq(c, 0);
        assertEq(a, 0);
        assertEq(val.getValidatorRequests(validator2).length, 1);
    }

    // ------------------------------------------------------------------ recordBountyValidation

    function test_Bounty_CompletedIs100() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _final(agentOwner, IBountyTypes.Status.Completed);
        bytes32 h = val.bountyRequestHash(id, agentOwner, b.resultHash);
        vm.expectEmit(address(val));
        emit ValidationRequest(verifier, agentId, "", h);
        vm.expectEmit(address(val));
        emit ValidationResponse(verifier, agentId, h, 100, "", keccak256(abi.encode(b)), "reef.bounty");
        vm.expectEmit(address(val));
        emit BountyValidationRecorded(id, agentId, h);
        vm.prank(stranger); // anyone may copy a verdict: it is derived from the escrow's record
        assertEq(val.recordBountyValidation(id, b, agentId), h);

        (address v, uint256 a, uint8 resp,, string memory tag, uint256 last) = val.getValidationStatus(h);
        assertEq(v, verifier);
        assertEq(a, agentId);
        assertEq(resp, 100);
        assertEq(tag, val.BOUNTY_TAG());
        assertEq(last, block.timestamp);
        (uint64 c, uint8 avg) = val.getSummary(agentId, _one(verifier), "reef.bounty");
        assertEq(c, 1);
        assertEq(avg, 100);
    }

    function test_Bounty_RefundedIs0_ViaAgentWallet() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _final(agentWallet, IBountyTypes.Status.Refunded);
        bytes32 h = val.recordBountyValidation(id, b, agentId);
        (,, uint8 resp,,,) = val.getValidationStatus(h);
        assertEq(resp, 0);
        (uint64 c, uint8 avg) = val.getSummary(agentId, new address[](0), "");
        assertEq(c, 1);
        assertEq(avg, 0);
    }

    function test_Bounty_RequestHashBindsChainEscrowBountyProviderResult() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _final(agentOwner, IBountyTypes.Status.Completed);
        bytes32 h = val.bountyRequestHash(id, agentOwner, b.resultHash);
        assertEq(h, keccak256(abi.encode(block.chainid, address(ledger), id, agentOwner, b.resultHash)));
        assertTrue(h != val.bountyRequestHash(id + 1, agentOwner, b.resultHash));
        assertTrue(h != val.bountyRequestHash(id, agentWallet, b.resultHash));
        assertTrue(h != val.bountyRequestHash(id, agentOwner, keccak256("other")));
    }

    function test_RevertWhen_BountyRecordedTwice() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _final(agentOwner, IBountyTypes.Status.Completed);
        bytes32 h = val.recordBountyValidation(id, b, agentId);
        vm.expectRevert(abi.encodeWithSelector(ValidationRegistry.RequestExists.selector, h));
        val.recordBountyValidation(id, b, agentId);
    }

    function test_RevertWhen_BountyHasNoVerdict() public {
        IBountyTypes.Status[8] memory open = [
            IBountyTypes.Status.Funded,
            IBountyTypes.Status.Awarded,
            IBountyTypes.Status.Submitted,
            IBountyTypes.Status.Rejected,
            IBountyTypes.Status.Disputed,
            IBountyTypes.Status.Resolved,
            IBountyTypes.Status.Expired,
            IBountyTypes.Status.Cancelled
        ];
        for (uint256 i; i < open.length; ++i) {
            (uint256 id, IBountyTypes.Bounty memory b) = _final(agentOwner, open[i]);
            vm.expectRevert(abi.encodeWithSelector(ValidationRegistry.NoVerdict.selector, open[i]));
            val.recordBountyValidation(id, b, agentId);
        }
    }

    function test_RevertWhen_BountyRecordMismatch() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _final(agentOwner, IBountyTypes.Status.Completed);
        b.price = 2 ether; // not the escrow's record
        vm.expectRevert(MockBountyLedger.BountyMismatch.selector);
        val.recordBountyValidation(id, b, agentId);
    }

    function test_RevertWhen_BountyWrongAgentOrNoProvider() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _final(stranger, IBountyTypes.Status.Completed);
        vm.expectRevert(ValidationRegistry.NotProviderAgent.selector);
        val.recordBountyValidation(id, b, agentId);

        (id, b) = _final(address(0), IBountyTypes.Status.Completed);
        vm.expectRevert(ValidationRegistry.NoProvider.selector);
        val.recordBountyValidation(id, b, agentId);

        (id, b) = _final(agentOwner, IBountyTypes.Status.Completed);
        vm.expectRevert(ValidationRegistry.AgentNotFound.selector);
        val.recordBountyValidation(id, b, 999);
    }

    function test_RevertWhen_BountySelfEvaluated() public {
        uint256 id = nextBountyId++;
        IBountyTypes.Bounty memory b = _bounty(agentOwner);
        b.evaluator = agentOwner;
        ledger.setRecord(id, b, IBountyTypes.Status.Completed);
        vm.expectRevert(ValidationRegistry.SelfValidation.selector);
        val.recordBountyValidation(id, b, agentId);
    }

    /// A bounty's validator is its evaluator: only it may answer again (ERC-8004 lets a validator
    /// update its answer; the registry keeps the last one), nobody else can move the score.
    function test_Bounty_EvaluatorMayUpdateItsAnswer() public {
        (uint256 id, IBountyTypes.Bounty memory b) = _final(agentOwner, IBountyTypes.Status.Completed);
        bytes32 h = val.recordBountyValidation(id, b, agentId);
        vm.prank(stranger);
        vm.expectRevert(ValidationRegistry.NotValidator.selector);
        val.validationResponse(h, 0, "", bytes32(0), "reef.bounty");
        vm.prank(verifier);
        val.validationResponse(h, 80, "", bytes32(0), "reef.bounty");
        (,, uint8 resp,, string memory tag,) = val.getValidationStatus(h);
        assertEq(resp, 80);
        assertEq(tag, "reef.bounty");
        // Another tag replaces the bounty tag (and back again).
        vm.prank(verifier);
        val.validationResponse(h, 70, "", bytes32(0), "appeal");
        (,,,, tag,) = val.getValidationStatus(h);
        assertEq(tag, "appeal");
        (uint64 c,) = val.getSummary(agentId, new address[](0), "reef.bounty");
        assertEq(c, 0);
        (c,) = val.getSummary(agentId, new address[](0), "appeal");
        assertEq(c, 1);
        vm.prank(verifier);
        val.validationResponse(h, 75, "", bytes32(0), "reef.bounty");
        (,,,, tag,) = val.getValidationStatus(h);
        assertEq(tag, "reef.bounty");
        (c,) = val.getSummary(agentId, new address[](0), "reef.bounty");
        assertEq(c, 1);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_ResponseBound(uint8 response) public {
        bytes32 h = keccak256("a");
        _request(h);
        vm.prank(validator);
        if (response > 100) {
            vm.expectRevert(abi.encodeWithSelector(ValidationRegistry.ResponseOutOfRange.selector, response));
            val.validationResponse(h, response, "", bytes32(0), "");
        } else {
            val.validationResponse(h, response, "", bytes32(0), "");
            (,, uint8 got,,,) = val.getValidationStatus(h);
            assertEq(got, response);
        }
    }

    function testFuzz_SummaryIsTheFlooredMean(uint8[8] memory raw, uint8 n) public {
        n = uint8(bound(n, 1, 8));
        uint256 sum;
        for (uint256 i; i < n; ++i) {
            uint8 r = uint8(bound(raw[i], 0, 100));
            bytes32 h = keccak256(abi.encode(i));
            _request(h);
            vm.prank(validator);
            val.validationResponse(h, r, "", bytes32(0), "");
            sum += r;
        }
        (uint64 c, uint8 avg) = val.getSummary(agentId, _one(validator), "");
        assertEq(c, n);
        assertEq(avg, sum / n);
    }

    function testFuzz_OnlyOperatorsRequest(address caller) public {
        vm.assume(caller != agentOwner);
        vm.prank(caller);
        vm.expectRevert(ValidationRegistry.NotAgentOperator.selector);
        val.validationRequest(validator, agentId, "", keccak256("x"));
    }
}
