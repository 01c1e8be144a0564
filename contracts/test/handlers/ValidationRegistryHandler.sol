// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {ValidationRegistry} from "../../src/ValidationRegistry.sol";
import {AgentRegistry} from "../../src/AgentRegistry.sol";
import {IBountyTypes} from "../../src/interfaces/IBountyTypes.sol";
import {MockBountyLedger} from "../mocks/MockBountyLedger.sol";

/// @notice Drives the ValidationRegistry with a fixed set of agents, validators and strangers:
///         requests, responses (valid or not, by the right validator or not) and bounty verdicts
///         (final or not, right agent or not). Ghosts mirror what must be stored.
contract ValidationRegistryHandler is CommonBase, StdCheats, StdUtils {
    ValidationRegistry public immutable val;
    AgentRegistry public immutable ids;
    MockBountyLedger public immutable ledger;

    address[] public owners;
    uint256[] public agentIds;
    address[] public validators;

    bytes32[] public allRequests;
    mapping(bytes32 => address) public ghostValidator;
    mapping(bytes32 => uint256) public ghostAgent;
    mapping(bytes32 => bool) public ghostAnswered;
    mapping(bytes32 => uint8) public ghostResponse;
    mapping(uint256 => bool) public ghostBountyRecorded;
    uint256 public ghostRequestsOpened;
    uint256 public nextBountyId = 1;
    uint256 public bountiesRecorded;

    constructor(ValidationRegistry val_, AgentRegistry ids_, MockBountyLedger ledger_) {
        val = val_;
        ids = ids_;
        ledger = ledger_;
        for (uint256 i; i < 3; ++i) {
            address o = makeAddr(string(abi.encodePacked("reef.agent", vm.toString(i))));
            owners.push(o);
            vm.prank(o);
            agentIds.push(ids.register("ipfs://agent"));
            validators.push(makeAddr(string(abi.encodePacked("reef.validator", vm.toString(i)))));
        }
    }

    function request(uint256 agentSeed, uint256 validatorSeed, uint256 callerSeed, bytes32 salt) external {
        uint256 i = agentSeed % agentIds.length;
        address v = validators[validatorSeed % validators.length];
        // One call in four comes from another agent's owner and must be refused.
        address caller = callerSeed % 4 == 0 ? owners[(i + 1) % owners.length] : owners[i];
        bytes32 h = keccak256(abi.encode(salt, allRequests.length));
        vm.prank(caller);
        try val.validationRequest(v, agentIds[i], "ipfs://work", h) {
            require(caller == owners[i], "a stranger opened a request");
            allRequests.push(h);
            ghostValidator[h] = v;
            ghostAgent[h] = agentIds[i];
            ++ghostRequestsOpened;
        } catch {
            require(caller != owners[i], "the owner's request was refused");
        }
    }

    function respond(uint256 requestSeed, uint256 callerSeed, uint8 response, bool tagged) external {
        if (allRequests.length == 0) return;
        bytes32 h = allRequests[requestSeed % allRequests.length];
        address right = ghostValidator[h];
        address caller = callerSeed % 3 == 0 ? validators[callerSeed % validators.length] : right;
        vm.prank(caller);
        try val.validationResponse(h, response, "", bytes32(0), tagged ? "zk" : "") {
            require(caller == right && response <= 100, "a bad response was stored");
            ghostAnswered[h] = true;
            ghostResponse[h] = response;
        } catch {
            require(caller != right || response > 100, "a good response was refused");
        }
    }

    function recordBounty(uint256 agentSeed, uint256 statusSeed, bool rightAgent) external {
        uint256 i = agentSeed % agentIds.length;
        uint256 id = nextBountyId++;
        IBountyTypes.Bounty memory b;
        b.poster = makeAddr("reef.poster");
        b.provider = owners[i];
        b.evaluator = validators[agentSeed % validators.length];
        b.amount = 1 ether;
        b.price = 1 ether;
        b.resultHash = keccak256(abi.encode(id));
        IBountyTypes.Status status = IBountyTypes.Status(statusSeed % 12);
        ledger.setRecord(id, b, status);
        uint256 agent = rightAgent ? agentIds[i] : agentIds[(i + 1) % agentIds.length];
        bool verdict = status == IBountyTypes.Status.Completed || status == IBountyTypes.Status.Refunded;
        try val.recordBountyValidation(id, b, agent) returns (bytes32 h) {
            require(verdict && rightAgent, "a bounty without a verdict was recorded");
            allRequests.push(h);
            ghostValidator[h] = b.evaluator;
            ghostAgent[h] = agent;
            ghostAnswered[h] = true;
            ghostResponse[h] = status == IBountyTypes.Status.Completed ? 100 : 0;
            ghostBountyRecorded[id] = true;
            ++ghostRequestsOpened;
            ++bountiesRecorded;
        } catch {
            require(!(verdict && rightAgent), "a final bounty's verdict was refused");
        }
    }

    function requestCount() external view returns (uint256) {
        return allRequests.length;
    }

    function agentCount() external view returns (uint256) {
        return agentIds.length;
    }

    function validatorCount() external view returns (uint256) {
        return validators.length;
    }
}
