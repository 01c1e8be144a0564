// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {ValidationRegistry} from "../src/ValidationRegistry.sol";
import {AgentRegistry} from "../src/AgentRegistry.sol";
import {MockBountyLedger} from "./mocks/MockBountyLedger.sol";
import {ValidationRegistryHandler} from "./handlers/ValidationRegistryHandler.sol";

contract ValidationRegistryInvariantTest is Test {
    ValidationRegistry internal val;
    ValidationRegistryHandler internal handler;

    function setUp() public {
        AgentRegistry ids = new AgentRegistry(address(this), 1 days);
        MockBountyLedger ledger = new MockBountyLedger();
        val = new ValidationRegistry(address(ids), address(ledger));
        handler = new ValidationRegistryHandler(val, ids, ledger);
        targetContract(address(handler));
    }

    /// @dev Every request stored is the one the handler opened: same validator, same agent, and
    ///      the latest accepted response (never above 100).
    function invariant_StatusMatchesGhosts() public view {
        uint256 n = handler.requestCount();
        for (uint256 k; k < n; ++k) {
            bytes32 h = handler.allRequests(k);
            (address v, uint256 a, uint8 resp,,, uint256 last) = val.getValidationStatus(h);
            assertEq(v, handler.ghostValidator(h));
            assertEq(a, handler.ghostAgent(h));
            assertLe(resp, 100);
            if (handler.ghostAnswered(h)) {
                assertEq(resp, handler.ghostResponse(h));
                assertGt(last, 0);
            } else {
                assertEq(last, 0);
            }
        }
    }

    /// @dev The per-agent and per-validator lists partition the requests: each request is listed
    ///      once under its agent and once under its validator.
    function invariant_ListsPartitionRequests() public view {
        uint256 byAgent;
        for (uint256 i; i < handler.agentCount(); ++i) {
            byAgent += val.getAgentValidations(handler.agentIds(i)).length;
        }
        uint256 byValidator;
        for (uint256 j; j < handler.validatorCount(); ++j) {
            byValidator += val.getValidatorRequests(handler.validators(j)).length;
        }
        assertEq(byAgent, handler.ghostRequestsOpened());
        assertEq(byValidator, handler.ghostRequestsOpened());
    }

    /// @dev getSummary over all validators counts exactly the answered requests of the agent,
    ///      and its average is their floored mean.
    function invariant_SummaryIsTheMeanOfAnswers() public view {
        address[] memory all = new address[](0);
        for (uint256 i; i < handler.agentCount(); ++i) {
            uint256 agentId = handler.agentIds(i);
            bytes32[] memory hs = val.getAgentValidations(agentId);
            uint256 count;
            uint256 sum;
            for (uint256 k; k < hs.length; ++k) {
                if (handler.ghostAnswered(hs[k])) {
                    ++count;
                    sum += handler.ghostResponse(hs[k]);
                }
            }
            (uint64 c, uint8 avg) = val.getSummary(agentId, all, "");
            assertEq(c, count);
            assertEq(avg, count == 0 ? 0 : sum / count);
        }
    }
}
