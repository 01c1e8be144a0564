// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IBountyLedger} from "./interfaces/IBountyLedger.sol";
import {IBountyTypes} from "./interfaces/IBountyTypes.sol";

/// @title Minimal view of an ERC-8004 Identity Registry used by the ReputationRegistry.
interface IAgentIdentity {
    /// @notice ERC-721 owner of `agentId` (reverts if it does not exist).
    function ownerOf(uint256 agentId) external view returns (address);
    /// @notice ERC-721 approved address for `agentId`.
    function getApproved(uint256 agentId) external view returns (address);
    /// @notice ERC-721 operator approval.
    function isApprovedForAll(address owner, address operator) external view returns (bool);
    /// @notice ERC-8004 verified payment wallet of `agentId` (zero if unset).
    function getAgentWallet(uint256 agentId) external view returns (address);
}

/// @title Reef reputation registry: ERC-8004 Reputation Registry gated by paid bounties.
/// @notice Feedback can only be given by a client holding a credit earned from a finished bounty
///         (Completed, Refunded = rejection final, or Resolved) it posted, for the agent whose
///         owner or agentWallet was that bounty's provider. One credit per bounty, so reputation
///         cannot be farmed without paying the escrow. Storage, events and reads follow ERC-8004
///         (1-indexed feedback per (agent, client); `getSummary` requires a non-empty client list).
contract ReputationRegistry {
    // ------------------------------------------------------------------ types

    /// @notice Stored feedback (endpoint, feedbackURI and feedbackHash are only emitted).
    struct Feedback {
        int128 value;
        uint8 valueDecimals;
        bool isRevoked;
        string tag1;
        string tag2;
    }

    /// @dev Bundles the feedback arguments to keep the stack shallow (no via-IR).
    struct FeedbackInput {
        int128 value;
        uint8 valueDecimals;
        string tag1;
        string tag2;
        string endpoint;
        string feedbackURI;
        bytes32 feedbackHash;
    }

    /// @dev Return rows of `readAllFeedback`.
    struct FeedbackRows {
        address[] clients;
        uint64[] feedbackIndexes;
        int128[] values;
        uint8[] valueDecimals;
        string[] tag1s;
        string[] tag2s;
        bool[] revokedStatuses;
    }

    // ------------------------------------------------------------------ constants / immutables

    /// @notice Largest accepted |value| (keeps WAD-normalised sums far from overflow).
    int128 public constant MAX_ABS_VALUE = 1e38;
    /// @notice Largest accepted valueDecimals.
    uint8 public constant MAX_VALUE_DECIMALS = 18;

    IAgentIdentity private immutable _identity;
    /// @notice The bounty escrow whose records gate feedback.
    IBountyLedger public immutable ledger;

    // ------------------------------------------------------------------ storage

    mapping(uint256 bountyId => bool) private _bountyCredited;
    mapping(address client => mapping(address provider => uint256 credits)) private _credits;

    mapping(uint256 agentId => mapping(address client => mapping(uint64 index => Feedback))) private
        _feedback;
    mapping(uint256 agentId => mapping(address client => uint64 lastIndex)) private _lastIndex;
    mapping(uint256 agentId => address[] clients) private _clients;
    mapping(uint256 agentId => mapping(address client => bool)) private _isClient;
    mapping(uint256 agentId => mapping(address client => mapping(uint64 index => address[] responders)))
        private _responders;
    mapping(
        uint256 agentId
            => mapping(address client => mapping(uint64 index => mapping(address responder => uint64)))
    ) private _responseCount;

    // ------------------------------------------------------------------ events (ERC-8004)

    /// @notice New feedback was given.
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
    /// @notice Feedback was revoked by its client.
    event FeedbackRevoked(
        uint256 indexed agentId, address indexed clientAddress, uint64 indexed feedbackIndex
    );
    /// @notice A response was appended to feedback.
    event ResponseAppended(
        uint256 indexed agentId,
        address indexed clientAddress,
        uint64 feedbackIndex,
        address indexed responder,
        string responseURI,
        bytes32 responseHash
    );

    // ------------------------------------------------------------------ events (Reef)

    /// @notice A finished bounty granted `client` one feedback credit for `provider`.
    event FeedbackAuthorized(uint256 indexed bountyId, address indexed client, address indexed provider);

    // ------------------------------------------------------------------ errors

    /// @notice A constructor address was zero.
    error ZeroAddress();
    /// @notice The bounty is not in a final paid/refunded/resolved state.
    error BountyNotFinal(IBountyTypes.Status status);
    /// @notice The bounty has no provider.
    error NoProvider();
    /// @notice The bounty already granted its credit.
    error BountyAlreadyCredited();
    /// @notice Caller is not the bounty's poster.
    error NotPoster();
    /// @notice The agent owner, an operator, or the agent's wallet cannot rate the agent; nor can a
    ///         bounty whose poster is its own provider grant a credit.
    error SelfFeedback();
    /// @notice Caller has no credit for the agent's owner or agentWallet.
    error NoFeedbackCredit();
    /// @notice The agent does not exist in the identity registry.
    error AgentNotFound();
    /// @notice valueDecimals > 18.
    error InvalidValueDecimals();
    /// @notice |value| > MAX_ABS_VALUE.
    error ValueOutOfRange();
    /// @notice No feedback at this index for this (agent, client).
    error FeedbackNotFound();
    /// @notice The feedback is already revoked.
    error AlreadyRevoked();
    /// @notice responseURI must be non-empty.
    error EmptyResponseURI();
    /// @notice getSummary needs a non-empty client list (ERC-8004 Sybil guard).
    error ClientAddressesRequired();

    // ------------------------------------------------------------------ constructor

    /// @param identityRegistry_ ERC-8004 identity registry (Reef: AgentRegistry).
    /// @param ledger_ Bounty escrow implementing `verifyRecord`.
    constructor(address identityRegistry_, address ledger_) {
        if (identityRegistry_ == address(0) || ledger_ == address(0)) revert ZeroAddress();
        _identity = IAgentIdentity(identityRegistry_);
        ledger = IBountyLedger(ledger_);
    }

    // ================================================================== gate

    /// @notice Turn a finished bounty into one feedback credit for (b.poster → b.provider).
    /// @dev Anyone may call. Reverts on record mismatch (from the ledger), `BountyNotFinal`,
    ///      `NoProvider`, `SelfFeedback` (poster == provider) or `BountyAlreadyCredited`.
    /// @param bountyId Bounty id in the escrow.
    /// @param b The bounty's current full record.
    function authorizeFeedback(uint256 bountyId, IBountyTypes.Bounty calldata b) external {
        _authorize(bountyId, b);
    }

    /// @notice `authorizeFeedback` + `giveFeedback` in one call; only the bounty's poster.
    /// @param bountyId Bounty id in the escrow.
    /// @param b The bounty's current full record.
    /// @param agentId Agent whose owner or agentWallet is `b.provider`.
    /// @param value Signed fixed-point feedback value.
    /// @param valueDecimals Decimals of `value` (0-18).
    /// @param tag1 Optional tag.
    /// @param tag2 Optional tag.
    /// @param endpoint Optional endpoint URI.
    /// @param feedbackURI Optional off-chain feedback file.
    /// @param feedbackHash Optional keccak256 of the feedback file.
    function giveBountyFeedback(
        uint256 bountyId,
        IBountyTypes.Bounty memory b,
        uint256 agentId,
        int128 value,
        uint8 valueDecimals,
        string memory tag1,
        string memory tag2,
        string memory endpoint,
        string memory feedbackURI,
        bytes32 feedbackHash
    ) external {
        // memory (not calldata) parameters keep the ABI decoder within the legacy stack limit.
        if (msg.sender != b.poster) revert NotPoster();
        _authorize(bountyId, b);
        _giveFeedback(
            agentId, FeedbackInput(value, valueDecimals, tag1, tag2, endpoint, feedbackURI, feedbackHash)
        );
    }

    /// @notice Unused feedback credits `client` holds for agents owned by / paid at `provider`.
    /// @param client Bounty poster.
    /// @param provider Bounty provider.
    function feedbackCredits(address client, address provider) external view returns (uint256) {
        return _credits[client][provider];
    }

    /// @notice Whether `bountyId` already granted its feedback credit.
    /// @param bountyId Bounty id.
    function bountyCredited(uint256 bountyId) external view returns (bool) {
        return _bountyCredited[bountyId];
    }

    // ================================================================== ERC-8004 writes

    /// @notice ERC-8004 `giveFeedback`. Requires a credit for the agent's owner or agentWallet
    ///         (consumed; the owner's credit first). The agent owner, its approved operators and
    ///         its agentWallet may not rate it.
    /// @param agentId Agent id.
    /// @param value Signed fixed-point feedback value (|value| <= 1e38).
    /// @param valueDecimals Decimals of `value` (0-18).
    /// @param tag1 Optional tag.
    /// @param tag2 Optional tag.
    /// @param endpoint Optional endpoint URI (emitted only).
    /// @param feedbackURI Optional off-chain feedback file (emitted only).
    /// @param feedbackHash Optional keccak256 of the feedback file (emitted only).
    function giveFeedback(
        uint256 agentId,
        int128 value,
        uint8 valueDecimals,
        string calldata tag1,
        string calldata tag2,
        string calldata endpoint,
        string calldata feedbackURI,
        bytes32 feedbackHash
    ) external {
        _giveFeedback(
            agentId, FeedbackInput(value, valueDecimals, tag1, tag2, endpoint, feedbackURI, feedbackHash)
        );
    }

    /// @notice Revoke msg.sender's feedback `feedbackIndex` on `agentId` (the credit is not returned).
    /// @param agentId Agent id.
    /// @param feedbackIndex 1-based index.
    function revokeFeedback(uint256 agentId, uint64 feedbackIndex) external {
        if (feedbackIndex == 0 || feedbackIndex > _lastIndex[agentId][msg.sender]) revert FeedbackNotFound();
        Feedback storage f = _feedback[agentId][msg.sender][feedbackIndex];
        if (f.isRevoked) revert AlreadyRevoked();
        f.isRevoked = true;
        emit FeedbackRevoked(agentId, msg.sender, feedbackIndex);
    }

    /// @notice Append a response to existing feedback. Anyone may respond.
    /// @param agentId Agent id.
    /// @param clientAddress Client that gave the feedback.
    /// @param feedbackIndex 1-based index.
    /// @param responseURI Response file URI (non-empty).
    /// @param responseHash Optional keccak256 of the response file.
    function appendResponse(
        uint256 agentId,
        address clientAddress,
        uint64 feedbackIndex,
        string calldata responseURI,
        bytes32 responseHash
    ) external {
        if (feedbackIndex == 0 || feedbackIndex > _lastIndex[agentId][clientAddress]) {
            revert FeedbackNotFound();
        }
        if (bytes(responseURI).length == 0) revert EmptyResponseURI();
        mapping(address => uint64) storage counts = _responseCount[agentId][clientAddress][feedbackIndex];
        if (counts[msg.sender] == 0) _responders[agentId][clientAddress][feedbackIndex].push(msg.sender);
        ++counts[msg.sender];
        emit ResponseAppended(agentId, clientAddress, feedbackIndex, msg.sender, responseURI, responseHash);
    }

    // ================================================================== ERC-8004 reads

    /// @notice The identity registry this reputation registry serves.
    function getIdentityRegistry() external view returns (address identityRegistry) {
        return address(_identity);
    }

    /// @notice Average of the non-revoked feedback of `clientAddresses` on `agentId`, optionally
    ///         filtered by tags (empty string = no filter).
    /// @dev Values are normalised to 18 decimals, averaged, and returned at the most frequent
    ///      valueDecimals among the counted feedback (ties: the smaller; fewer decimals if the
    ///      average would not fit int128 at that precision). Reverts
    ///      `ClientAddressesRequired` on an empty list (ERC-8004: clientAddresses MUST be provided).
    /// @param agentId Agent id.
    /// @param clientAddresses Clients to include (non-empty; duplicates are counted twice).
    /// @param tag1 Tag filter.
    /// @param tag2 Tag filter.
    /// @return count Feedback counted.
    /// @return summaryValue Average value at `summaryValueDecimals`.
    /// @return summaryValueDecimals Decimals of `summaryValue`.
    function getSummary(
        uint256 agentId,
        address[] calldata clientAddresses,
        string calldata tag1,
        string calldata tag2
    ) external view returns (uint64 count, int128 summaryValue, uint8 summaryValueDecimals) {
        if (clientAddresses.length == 0) revert ClientAddressesRequired();
        (address[] memory clients, uint64[] memory indexes) =
            _matching(agentId, clientAddresses, tag1, tag2, false);
        return _average(agentId, clients, indexes);
    }

    /// @notice One stored feedback.
    /// @dev Reverts `FeedbackNotFound` for index 0 or beyond `getLastIndex`.
    /// @param agentId Agent id.
    /// @param clientAddress Client.
    /// @param feedbackIndex 1-based index.
    function readFeedback(uint256 agentId, address clientAddress, uint64 feedbackIndex)
        external
        view
        returns (int128 value, uint8 valueDecimals, string memory tag1, string memory tag2, bool isRevoked)
    {
        if (feedbackIndex == 0 || feedbackIndex > _lastIndex[agentId][clientAddress]) {
            revert FeedbackNotFound();
        }
        Feedback storage f = _feedback[agentId][clientAddress][feedbackIndex];
        return (f.value, f.valueDecimals, f.tag1, f.tag2, f.isRevoked);
    }

    /// @notice All feedback matching the filters (empty client list = every client of the agent).
    /// @param agentId Agent id.
    /// @param clientAddresses Client filter (empty = all).
    /// @param tag1 Tag filter (empty = none).
    /// @param tag2 Tag filter (empty = none).
    /// @param includeRevoked Whether to include revoked feedback.
    /// @return clients Client of each row. (Then: feedbackIndexes, values, valueDecimals, tag1s,
    ///         tag2s, revokedStatuses — parallel arrays, as in ERC-8004.)
    function readAllFeedback(
        uint256 agentId,
        address[] memory clientAddresses,
        string memory tag1,
        string memory tag2,
        bool includeRevoked
    )
        external
        view
        returns (
            address[] memory, // clients
            uint64[] memory, // feedbackIndexes
            int128[] memory, // values
            uint8[] memory, // valueDecimals
            string[] memory, // tag1s
            string[] memory, // tag2s
            bool[] memory // revokedStatuses
        )
    {
        // Encoded as a struct (= the 7-tuple behind one offset word) to stay within the legacy
        // code generator's stack limit; the leading offset word is dropped.
        bytes memory out = abi.encode(_readAll(agentId, clientAddresses, tag1, tag2, includeRevoked));
        assembly ("memory-safe") {
            return(add(out, 0x40), sub(mload(out), 0x20))
        }
    }

    /// @notice Number of responses. `clientAddress == 0`: all feedback of the agent;
    ///         `feedbackIndex == 0`: all feedback of that client; `responders` empty: all responders.
    /// @param agentId Agent id.
    /// @param clientAddress Client filter (0 = all).
    /// @param feedbackIndex Index filter (0 = all).
    /// @param responders Responder filter (empty = all).
    function getResponseCount(
        uint256 agentId,
        address clientAddress,
        uint64 feedbackIndex,
        address[] calldata responders
    ) external view returns (uint64 count) {
        if (clientAddress == address(0)) {
            address[] storage all = _clients[agentId];
            for (uint256 i; i < all.length; ++i) {
                count += _countClient(agentId, all[i], responders);
            }
        } else if (feedbackIndex == 0) {
            count = _countClient(agentId, clientAddress, responders);
        } else {
            count = _countResponses(agentId, clientAddress, feedbackIndex, responders);
        }
    }

    /// @notice Every client that ever gave feedback to `agentId`.
    /// @param agentId Agent id.
    function getClients(uint256 agentId) external view returns (address[] memory) {
        return _clients[agentId];
    }

    /// @notice Last (highest) feedback index `clientAddress` gave to `agentId` (0 if none).
    /// @param agentId Agent id.
    /// @param clientAddress Client.
    function getLastIndex(uint256 agentId, address clientAddress) external view returns (uint64) {
        return _lastIndex[agentId][clientAddress];
    }

    // ================================================================== internals

    function _authorize(uint256 bountyId, IBountyTypes.Bounty memory b) private {
        IBountyTypes.Status status = ledger.verifyRecord(bountyId, b);
        if (
            status != IBountyTypes.Status.Completed && status != IBountyTypes.Status.Refunded
                && status != IBountyTypes.Status.Resolved
        ) revert BountyNotFinal(status);
        address provider = b.provider;
        if (provider == address(0)) revert NoProvider();
        address poster = b.poster;
        if (poster == provider) revert SelfFeedback();
        if (_bountyCredited[bountyId]) revert BountyAlreadyCredited();
        _bountyCredited[bountyId] = true;
        ++_credits[poster][provider];
        emit FeedbackAuthorized(bountyId, poster, provider);
    }

    function _giveFeedback(uint256 agentId, FeedbackInput memory input) private {
        if (input.valueDecimals > MAX_VALUE_DECIMALS) revert InvalidValueDecimals();
        if (input.value > MAX_ABS_VALUE || input.value < -MAX_ABS_VALUE) revert ValueOutOfRange();
        _consumeCredit(agentId);

        uint64 index = ++_lastIndex[agentId][msg.sender];
        Feedback storage f = _feedback[agentId][msg.sender][index];
        f.value = input.value;
        f.valueDecimals = input.valueDecimals;
        f.tag1 = input.tag1;
        f.tag2 = input.tag2;
        if (!_isClient[agentId][msg.sender]) {
            _isClient[agentId][msg.sender] = true;
            _clients[agentId].push(msg.sender);
        }
        emit NewFeedback(
            agentId,
            msg.sender,
            index,
            input.value,
            input.valueDecimals,
            input.tag1,
            input.tag1,
            input.tag2,
            input.endpoint,
            input.feedbackURI,
            input.feedbackHash
        );
    }

    /// @dev Self-feedback check, then consume a credit for the agent's owner, else its agentWallet.
    function _consumeCredit(uint256 agentId) private {
        address owner;
        try _identity.ownerOf(agentId) returns (address o) {
            owner = o;
        } catch {}
        if (owner == address(0)) revert AgentNotFound();
        address wallet = _identity.getAgentWallet(agentId);
        if (
            msg.sender == owner || msg.sender == wallet || _identity.getApproved(agentId) == msg.sender
                || _identity.isApprovedForAll(owner, msg.sender)
        ) revert SelfFeedback();

        mapping(address => uint256) storage mine = _credits[msg.sender];
        if (mine[owner] != 0) {
            --mine[owner];
        } else if (wallet != address(0) && mine[wallet] != 0) {
            --mine[wallet];
        } else {
            revert NoFeedbackCredit();
        }
    }

    /// @dev WAD-normalised average of the given feedback at the most frequent decimals.
    function _average(uint256 agentId, address[] memory clients, uint64[] memory indexes)
        private
        view
        returns (uint64 count, int128 summaryValue, uint8 summaryValueDecimals)
    {
        uint256 n = clients.length;
        if (n == 0) return (0, 0, 0);
        int256 sumWad;
        uint64[19] memory decimalsCount;
        for (uint256 k; k < n; ++k) {
            Feedback storage f = _feedback[agentId][clients[k]][indexes[k]];
            uint8 d = f.valueDecimals;
            sumWad += int256(f.value) * int256(10 ** uint256(18 - d));
            ++decimalsCount[d];
        }
        uint64 best;
        for (uint8 d; d <= 18; ++d) {
            if (decimalsCount[d] > best) {
                best = decimalsCount[d];
                summaryValueDecimals = d;
            }
        }
        // forge-lint: disable-next-line(unsafe-typecast) -- n <= total feedback count (uint64 indexes)
        count = uint64(n);
        // forge-lint: disable-next-line(unsafe-typecast) -- n is small (array length)
        int256 avgWad = sumWad / int256(n);
        int256 scaled = avgWad / int256(10 ** uint256(18 - summaryValueDecimals));
        // Pathological mixes (huge 0-decimal values, 18-decimal majority) may not fit int128 at the
        // mode precision: drop precision until it fits (|avg| <= 1e38 always fits at 0 decimals).
        while (scaled > type(int128).max || scaled < type(int128).min) {
            --summaryValueDecimals;
            scaled = avgWad / int256(10 ** uint256(18 - summaryValueDecimals));
        }
        // forge-lint: disable-next-line(unsafe-typecast) -- range checked by the loop above
        summaryValue = int128(scaled);
    }

    function _readAll(
        uint256 agentId,
        address[] memory clientAddresses,
        string memory tag1,
        string memory tag2,
        bool includeRevoked
    ) private view returns (FeedbackRows memory rows) {
        address[] memory list = clientAddresses.length != 0 ? clientAddresses : _clients[agentId];
        (rows.clients, rows.feedbackIndexes) = _matching(agentId, list, tag1, tag2, includeRevoked);
        uint256 n = rows.clients.length;
        rows.values = new int128[](n);
        rows.valueDecimals = new uint8[](n);
        rows.tag1s = new string[](n);
        rows.tag2s = new string[](n);
        rows.revokedStatuses = new bool[](n);
        for (uint256 k; k < n; ++k) {
            Feedback storage f = _feedback[agentId][rows.clients[k]][rows.feedbackIndexes[k]];
            rows.values[k] = f.value;
            rows.valueDecimals[k] = f.valueDecimals;
            rows.tag1s[k] = f.tag1;
            rows.tag2s[k] = f.tag2;
            rows.revokedStatuses[k] = f.isRevoked;
        }
    }

    /// @dev (client, index) pairs of the feedback of `list` on `agentId` matching the tag filters.
    function _matching(
        uint256 agentId,
        address[] memory list,
        string memory tag1,
        string memory tag2,
        bool includeRevoked
    ) private view returns (address[] memory clients, uint64[] memory indexes) {
        uint256 total;
        for (uint256 i; i < list.length; ++i) {
            total += _lastIndex[agentId][list[i]];
        }
        clients = new address[](total);
        indexes = new uint64[](total);
        // bytes32(0) = no filter (keccak256 never returns 0 in practice).
        bytes32 t1 = bytes(tag1).length == 0 ? bytes32(0) : keccak256(bytes(tag1));
        bytes32 t2 = bytes(tag2).length == 0 ? bytes32(0) : keccak256(bytes(tag2));
        uint256 n;
        for (uint256 i; i < list.length; ++i) {
            n = _collect(agentId, list[i], t1, t2, includeRevoked, clients, indexes, n);
        }
        assembly ("memory-safe") {
            mstore(clients, n)
            mstore(indexes, n)
        }
    }

    function _collect(
        uint256 agentId,
        address client,
        bytes32 t1,
        bytes32 t2,
        bool includeRevoked,
        address[] memory clients,
        uint64[] memory indexes,
        uint256 n
    ) private view returns (uint256) {
        uint64 last = _lastIndex[agentId][client];
        for (uint64 j = 1; j <= last; ++j) {
            Feedback storage f = _feedback[agentId][client][j];
            if (!includeRevoked && f.isRevoked) continue;
            if (t1 != bytes32(0) && keccak256(bytes(f.tag1)) != t1) continue;
            if (t2 != bytes32(0) && keccak256(bytes(f.tag2)) != t2) continue;
            clients[n] = client;
            indexes[n] = j;
            ++n;
        }
        return n;
    }

    function _countClient(uint256 agentId, address client, address[] calldata responders)
        private
        view
        returns (uint64 count)
    {
        uint64 last = _lastIndex[agentId][client];
        for (uint64 j = 1; j <= last; ++j) {
            count += _countResponses(agentId, client, j, responders);
        }
    }

    function _countResponses(uint256 agentId, address client, uint64 index, address[] calldata responders)
        private
        view
        returns (uint64 count)
    {
        mapping(address => uint64) storage counts = _responseCount[agentId][client][index];
        if (responders.length == 0) {
            address[] storage all = _responders[agentId][client][index];
            for (uint256 k; k < all.length; ++k) {
                count += counts[all[k]];
            }
        } else {
            for (uint256 k; k < responders.length; ++k) {
                count += counts[responders[k]];
            }
        }
    }
}
