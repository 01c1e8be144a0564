// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IBountyLedger} from "./interfaces/IBountyLedger.sol";
import {IBountyTypes} from "./interfaces/IBountyTypes.sol";
import {IERC8004Validation} from "./interfaces/IERC8004Validation.sol";
import {IAgentIdentity} from "./ReputationRegistry.sol";

/// @title Reef validation registry: the ERC-8004 Validation Registry, fed by escrow verdicts.
/// @notice Two ways in, one store and one set of ERC-8004 events and reads:
///         - ERC-8004 as written: an agent's owner or operator asks a validator to check a piece of
///           work (`validationRequest`), and that validator answers with a score of 0-100, as often
///           as it likes (`validationResponse`; the last answer counts).
///         - Reef's bounties: once a bounty is final, anyone may copy its verdict here
///           (`recordBountyValidation`). The escrow's record is the proof, so no signature is needed:
///           the validator is the bounty's evaluator (the node's verifier key, an EvaluatorPanel
///           contract, or the poster), the agent is the one whose owner or agentWallet was the
///           bounty's provider, and the response is 100 for `Completed` (the result was accepted) and
///           0 for `Refunded` (the rejection became final). Both ERC-8004 events are emitted, so a
///           reader that only knows the standard sees a request answered by the evaluator.
/// @dev A bounty's record is keyed by `bountyRequestHash(bountyId, provider, resultHash)`, so it can
///      be written once. `Resolved` (an arbiter's split) and contests (no single provider) carry no
///      verdict on one agent's work and are refused.
contract ValidationRegistry is IERC8004Validation {
    // ------------------------------------------------------------------ types

    /// @notice A validation request and its latest response.
    struct Request {
        address validator; // who may respond (never zero for a known request)
        uint8 response; // 0-100, meaningful once hasResponse
        bool hasResponse;
        bool bountyTag; // the tag is BOUNTY_TAG (kept as this bit, not as a string: -22k gas)
        uint64 lastUpdate; // block timestamp of the latest response (0 = none yet)
        uint256 agentId;
        bytes32 responseHash;
        string tag; // any other tag
    }

    // ------------------------------------------------------------------ constants / immutables

    /// @notice Highest response: the work passed in full.
    uint8 public constant MAX_RESPONSE = 100;
    /// @notice Tag of the responses copied from the escrow (`getSummary(agentId, [], "reef.bounty")`).
    string public constant BOUNTY_TAG = "reef.bounty";
    bytes32 private constant BOUNTY_TAG_HASH = keccak256(bytes(BOUNTY_TAG));

    IAgentIdentity private immutable _identity;
    /// @notice The bounty escrow whose records carry the verdicts copied here.
    IBountyLedger public immutable ledger;

    // ------------------------------------------------------------------ storage

    mapping(bytes32 requestHash => Request) private _requests;
    mapping(uint256 agentId => bytes32[] requestHashes) private _agentRequests;
    mapping(address validator => bytes32[] requestHashes) private _validatorRequests;

    // ------------------------------------------------------------------ events (Reef)

    /// @notice Bounty `bountyId`'s verdict was recorded as request `requestHash` for `agentId`.
    event BountyValidationRecorded(
        uint256 indexed bountyId, uint256 indexed agentId, bytes32 indexed requestHash
    );

    // ------------------------------------------------------------------ errors

    /// @notice A constructor address, or a request's validator, was zero.
    error ZeroAddress();
    /// @notice The agent does not exist in the identity registry.
    error AgentNotFound();
    /// @notice Caller is not the agent's owner or one of its operators.
    error NotAgentOperator();
    /// @notice A request with this hash already exists.
    error RequestExists(bytes32 requestHash);
    /// @notice No request with this hash.
    error RequestNotFound(bytes32 requestHash);
    /// @notice Caller is not the validator the request names.
    error NotValidator();
    /// @notice `response` is above 100.
    error ResponseOutOfRange(uint8 response);
    /// @notice The bounty's status carries no verdict on one agent's work (not Completed/Refunded).
    error NoVerdict(IBountyTypes.Status status);
    /// @notice The bounty has no single provider (a contest, or never awarded).
    error NoProvider();
    /// @notice The agent's owner and agentWallet are both other than the bounty's provider.
    error NotProviderAgent();
    /// @notice The bounty's evaluator was its own provider.
    error SelfValidation();

    // ------------------------------------------------------------------ constructor

    /// @param identityRegistry_ ERC-8004 identity registry (Reef: AgentRegistry).
    /// @param ledger_ Bounty escrow implementing `verifyRecord`.
    constructor(address identityRegistry_, address ledger_) {
        if (identityRegistry_ == address(0) || ledger_ == address(0)) revert ZeroAddress();
        _identity = IAgentIdentity(identityRegistry_);
        ledger = IBountyLedger(ledger_);
    }

    // ================================================================== ERC-8004 writes

    /// @notice ERC-8004 `validationRequest`: ask `validatorAddress` to validate work of `agentId`.
    ///         Only the agent's owner or an approved operator may ask.
    /// @param validatorAddress The validator (an EOA or a contract) that may respond.
    /// @param agentId Agent whose work is to be validated.
    /// @param requestURI Off-chain description of the work and what to check (emitted only).
    /// @param requestHash Commitment to the request data (keccak256 of the file at requestURI); unique.
    function validationRequest(
        address validatorAddress,
        uint256 agentId,
        string calldata requestURI,
        bytes32 requestHash
    ) external {
        if (validatorAddress == address(0)) revert ZeroAddress();
        address owner = _ownerOf(agentId);
        if (msg.sender != owner && !_identity.isApprovedForAll(owner, msg.sender)) {
            // getApproved is zero when nobody is approved: never let the zero address match it.
            address approved = _identity.getApproved(agentId);
            if (approved == address(0) || approved != msg.sender) revert NotAgentOperator();
        }
        _open(validatorAddress, agentId, requestURI, requestHash);
    }

    /// @notice ERC-8004 `validationResponse`: the request's validator scores it 0-100. May be
    ///         called again (for example a soft then a hard finality); the last response counts.
    /// @param requestHash The request answered.
    /// @param response Score, 0 (failed) to 100 (passed).
    /// @param responseURI Optional evidence (emitted only).
    /// @param responseHash Optional keccak256 of the evidence.
    /// @param tag Optional label, e.g. "soft-finality" (filterable in getSummary).
    function validationResponse(
        bytes32 requestHash,
        uint8 response,
        string calldata responseURI,
        bytes32 responseHash,
        string calldata tag
    ) external {
        Request storage r = _requests[requestHash];
        if (r.validator == address(0)) revert RequestNotFound(requestHash);
        if (msg.sender != r.validator) revert NotValidator();
        _respond(r, requestHash, response, responseURI, responseHash, tag);
    }

    // ================================================================== Reef: verdicts of the escrow

    /// @notice Copies the verdict of final bounty `bountyId` (record `b`) as a validation of
    ///         `agentId`'s work: request and response in one call, both ERC-8004 events emitted.
    ///         Anyone may call; everything recorded is derived from the escrow's record.
    /// @dev Reverts with the ledger's `BountyMismatch` if `b` is not the bounty's current record,
    ///      `NoVerdict` unless Completed (response 100) or Refunded (response 0), `NoProvider`,
    ///      `SelfValidation` (evaluator == provider), `NotProviderAgent`, `AgentNotFound`, or
    ///      `RequestExists` if already recorded.
    /// @param bountyId Bounty id in the escrow.
    /// @param b The bounty's current full record.
    /// @param agentId Agent whose owner or agentWallet is `b.provider`.
    /// @return requestHash The request's key, `bountyRequestHash(bountyId, b.provider, b.resultHash)`.
    function recordBountyValidation(uint256 bountyId, IBountyTypes.Bounty calldata b, uint256 agentId)
        external
        returns (bytes32 requestHash)
    {
        IBountyTypes.Status status = ledger.verifyRecord(bountyId, b);
        if (status != IBountyTypes.Status.Completed && status != IBountyTypes.Status.Refunded) {
            revert NoVerdict(status);
        }
        uint8 response = status == IBountyTypes.Status.Completed ? MAX_RESPONSE : 0;
        address provider = b.provider;
        if (provider == address(0)) revert NoProvider();
        if (b.evaluator == provider) revert SelfValidation();
        address owner = _ownerOf(agentId);
        if (owner != provider && _identity.getAgentWallet(agentId) != provider) revert NotProviderAgent();

        requestHash = bountyRequestHash(bountyId, provider, b.resultHash);
        _open(b.evaluator, agentId, "", requestHash);
        _respond(_requests[requestHash], requestHash, response, "", keccak256(abi.encode(b)), BOUNTY_TAG);
        emit BountyValidationRecorded(bountyId, agentId, requestHash);
    }

    /// @notice The request key of a bounty's verdict: commits to this chain, the escrow, the
    ///         bounty, the provider judged and the result it delivered.
    /// @param bountyId Bounty id.
    /// @param provider The bounty's provider.
    /// @param resultHash The result judged.
    function bountyRequestHash(uint256 bountyId, address provider, bytes32 resultHash)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(block.chainid, address(ledger), bountyId, provider, resultHash));
    }

    // ================================================================== ERC-8004 reads

    /// @notice The identity registry agents are resolved against.
    function getIdentityRegistry() external view returns (address identityRegistry) {
        return address(_identity);
    }

    /// @notice The request's validator, agent and latest response (zero response, hash and
    ///         lastUpdate until answered). Reverts `RequestNotFound` for an unknown hash.
    /// @param requestHash The request.
    function getValidationStatus(bytes32 requestHash)
        external
        view
        returns (
            address validatorAddress,
            uint256 agentId,
            uint8 response,
            bytes32 responseHash,
            string memory tag,
            uint256 lastUpdate
        )
    {
        Request storage r = _requests[requestHash];
        if (r.validator == address(0)) revert RequestNotFound(requestHash);
        return (r.validator, r.agentId, r.response, r.responseHash, _tagOf(r), r.lastUpdate);
    }

    /// @notice Count and average response of `agentId`'s answered requests, only those of
    ///         `validatorAddresses` when the list is non-empty, only those tagged `tag` when it is.
    /// @param agentId Agent.
    /// @param validatorAddresses Validators to count (empty = all).
    /// @param tag Tag to count (empty = all).
    function getSummary(uint256 agentId, address[] calldata validatorAddresses, string calldata tag)
        external
        view
        returns (uint64 count, uint8 averageResponse)
    {
        bytes32[] storage hashes = _agentRequests[agentId];
        bytes32 tagHash = keccak256(bytes(tag));
        bool anyTag = bytes(tag).length == 0;
        uint256 sum = 0;
        for (uint256 i; i < hashes.length; ++i) {
            Request storage r = _requests[hashes[i]];
            if (!r.hasResponse) continue;
            if (validatorAddresses.length != 0 && !_contains(validatorAddresses, r.validator)) continue;
            if (!anyTag && (r.bountyTag ? BOUNTY_TAG_HASH : keccak256(bytes(r.tag))) != tagHash) continue;
            ++count;
            sum += r.response;
        }
        // casting to uint8 is safe: every response is <= 100, so their mean is too
        // forge-lint: disable-next-line(unsafe-typecast)
        if (count != 0) averageResponse = uint8(sum / count);
    }

    /// @notice Every request about `agentId`, oldest first.
    /// @param agentId Agent.
    function getAgentValidations(uint256 agentId) external view returns (bytes32[] memory requestHashes) {
        return _agentRequests[agentId];
    }

    /// @notice Every request addressed to `validatorAddress`, oldest first.
    /// @param validatorAddress Validator.
    function getValidatorRequests(address validatorAddress)
        external
        view
        returns (bytes32[] memory requestHashes)
    {
        return _validatorRequests[validatorAddress];
    }

    // ================================================================== internals

    function _ownerOf(uint256 agentId) private view returns (address owner) {
        try _identity.ownerOf(agentId) returns (address o) {
            owner = o;
        } catch {}
        if (owner == address(0)) revert AgentNotFound();
    }

    function _open(address validator, uint256 agentId, string memory requestURI, bytes32 requestHash)
        private
    {
        Request storage r = _requests[requestHash];
        if (r.validator != address(0)) revert RequestExists(requestHash);
        r.validator = validator;
        r.agentId = agentId;
        _agentRequests[agentId].push(requestHash);
        _validatorRequests[validator].push(requestHash);
        emit ValidationRequest(validator, agentId, requestURI, requestHash);
    }

    function _respond(
        Request storage r,
        bytes32 requestHash,
        uint8 response,
        string memory responseURI,
        bytes32 responseHash,
        string memory tag
    ) private {
        if (response > MAX_RESPONSE) revert ResponseOutOfRange(response);
        r.response = response;
        r.hasResponse = true;
        // casting to uint64 is safe: block timestamps fit for the next 500 billion years
        // forge-lint: disable-next-line(unsafe-typecast)
        r.lastUpdate = uint64(block.timestamp);
        r.responseHash = responseHash;
        if (keccak256(bytes(tag)) == BOUNTY_TAG_HASH) {
            r.bountyTag = true;
            if (bytes(r.tag).length != 0) delete r.tag;
        } else {
            if (r.bountyTag) r.bountyTag = false;
            r.tag = tag;
        }
        emit ValidationResponse(r.validator, r.agentId, requestHash, response, responseURI, responseHash, tag);
    }

    function _tagOf(Request storage r) private view returns (string memory) {
        return r.bountyTag ? BOUNTY_TAG : r.tag;
    }

    function _contains(address[] calldata list, address a) private pure returns (bool) {
        for (uint256 i; i < list.length; ++i) {
            if (list[i] == a) return true;
        }
        return false;
    }
}
