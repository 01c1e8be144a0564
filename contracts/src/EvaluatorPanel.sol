// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IBountyLedger} from "./interfaces/IBountyLedger.sol";
import {IBountyTypes} from "./interfaces/IBountyTypes.sol";
import {PullLedger} from "./utils/PullLedger.sol";

/// @title Escrow views used by the evaluator panel.
/// @notice The subset of `BountyEscrow` the panel reads. Any `BountyEscrow` satisfies it.
interface IPanelEscrow is IBountyLedger {
    /// @notice Id of the bounty `poster` creates with `salt`.
    function bountyIdOf(address poster, bytes32 salt) external pure returns (uint256);

    /// @notice Status and timestamp of the last transition of a bounty.
    function statusOf(uint256 id) external view returns (Status status, uint40 stamp);

    /// @notice EIP-712 digest an evaluator signs for `att`.
    function hashAttestation(Attestation calldata att) external view returns (bytes32);
}

/// @title Reef evaluator panel
/// @notice A singleton ERC-1271 evaluator for `BountyEscrow` bounties judged by third-party
///         evaluator agents. A bounty whose `evaluator` is this contract is settled by a k-of-n
///         panel of member keys ("quorum" mode), or by a single key with quorum 1 ("evaluator"
///         mode). The poster registers the panel BEFORE posting the bounty (the escrow status of
///         the id must still be `None`), so bidders can inspect the panel before signing a bid;
///         a registered panel can never be changed. It can only be cancelled once the bounty id
///         can no longer be awarded (escrow status `Cancelled` or `Expired`): a bid signed for a
///         panel-judged bounty can rely on the panel judging it.
///
///         Signature format (the `evaluatorSig` passed to the escrow):
///         `abi.encode(uint256 bountyId, address provider, bytes32 resultHash, uint8 verdict,
///         bytes[] memberSigs)`, each member signature a 65-byte ECDSA signature over the escrow's
///         EIP-712 `Attestation(bountyId, provider, resultHash, verdict)` digest, signers strictly
///         increasing.
///
///         Fees: the poster escrows `feePerVote * quorum` (ETH or an ERC-20) with the panel. Once
///         the bounty is terminal anyone may call `settleFees` with the members' signatures for
///         the verdict that settled it; each of (at most `quorum`) valid signers is paid
///         `feePerVote` and the remainder goes back to the poster. If the panel never judged
///         (`Expired`, `Cancelled`, or the bounty was posted with another evaluator) the poster
///         gets the whole budget back. Payments are pushed; a failed push is credited to the
///         `withdrawable` pull ledger (`withdraw`).
///
///         Storage layout (per panel, `_panels[id]`):
///         - slot 0: poster (160) | quorum (8) | size (8) | state (8)
///         - slot 1: token
///         - slot 2: feePerVote
///         - slots 3..18: `address[16] members`, sorted ascending; only the first `size` are written.
///         Members are stored (not just hashed) because the ERC-1271 signature format carries no
///         member list: `isValidSignature` checks signers against storage. Sorting them at
///         registration lets it merge-walk the (sorted) signers against the members, loading each
///         member slot lazily and at most once cold, and stopping as soon as the quorum is reached.
///         A cancelled or settled panel keeps its record as a tombstone (`state`), so its id can
///         never be re-registered with other members after bidders have seen it.
contract EvaluatorPanel is IERC1271, PullLedger {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------------------------------
    // Types and constants
    // ------------------------------------------------------------------------------------------

    /// @notice Maximum number of members of a panel.
    uint256 public constant MAX_MEMBERS = 16;

    /// @notice Lifecycle of a panel.
    enum PanelState {
        None, // never registered
        Active, // registered, fee budget escrowed
        Settled, // fees paid out / refunded after the bounty ended
        Cancelled // withdrawn by the poster after the bounty was cancelled or expired unjudged
    }

    /// @dev Packed panel record (see the storage layout in the contract NatSpec).
    struct Panel {
        address poster;
        uint8 quorum;
        uint8 size;
        PanelState state;
        address token;
        uint128 feePerVote;
        address[MAX_MEMBERS] members;
    }

    /// @notice After a `Resolved` bounty's ruling, settling with fewer than `quorum` valid
    ///         signatures (which refunds the unpaid votes to the poster) is only allowed once this
    ///         delay has passed, so members have time to submit their signatures first.
    uint256 public constant PARTIAL_SETTLE_DELAY = 3 days;

    /// @dev ERC-1271 return values.
    bytes4 internal constant MAGIC_VALUE = 0x1626ba7e;
    bytes4 internal constant INVALID_VALUE = 0xffffffff;
    /// @dev Verdict values of an `Attestation`.
    uint8 internal constant VERDICT_ACCEPT = 1;
    uint8 internal constant VERDICT_REJECT = 2;

    // ------------------------------------------------------------------------------------------
    // Immutables and storage
    // ------------------------------------------------------------------------------------------

    /// @notice The bounty escrow whose attestations this panel signs.
    IPanelEscrow public immutable escrow;

    /// @dev bountyId => panel.
    mapping(uint256 => Panel) internal _panels;

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /// @notice A panel was registered for bounty `id` (members sorted ascending) and its fee
    ///         budget `feePerVote * quorum` escrowed.
    event PanelOpened(
        uint256 indexed id,
        address indexed poster,
        address[] members,
        uint8 quorum,
        address token,
        uint128 feePerVote
    );
    /// @notice The poster withdrew the panel of `id` after the bounty was cancelled or expired;
    ///         `refunded` is the returned fee budget.
    event PanelCancelled(uint256 indexed id, address indexed poster, uint256 refunded);
    /// @notice Fees of `id` were settled: each of `paid` received `feeEach`, the poster `refunded`.
    ///         `verdict` is the verdict the paid members signed (0 when the panel never judged).
    event FeesSettled(uint256 indexed id, uint8 verdict, address[] paid, uint256 feeEach, uint256 refunded);

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice The id already has (or had) a panel.
    error PanelExists();
    /// @notice The id has no panel.
    error NoPanel();
    /// @notice The escrow already knows the bounty (status is not `None`).
    error BountyAlreadyPosted();
    /// @notice The bounty can still be awarded or judged (`status` is not `Cancelled`/`Expired`).
    error BountyNotClosed(IBountyTypes.Status status);
    /// @notice A panel needs 1..MAX_MEMBERS members.
    error InvalidMemberCount();
    /// @notice A member is address(0).
    error ZeroMember();
    /// @notice `member` is listed twice.
    error DuplicateMember(address member);
    /// @notice The quorum is 0 or above the member count.
    error InvalidQuorum();
    /// @notice The panel's fees were already settled, or the panel was cancelled.
    error AlreadySettled();
    /// @notice The bounty has not reached a terminal status yet.
    error NotTerminal();
    /// @notice The verdict does not match the bounty's terminal status.
    error InvalidVerdict();
    /// @notice Recovered signers are not strictly increasing (unsorted or duplicate).
    error SignersNotSorted();
    /// @notice Only `valid` of the `quorum` required member signatures were supplied.
    error InsufficientSignatures(uint256 valid, uint256 quorum);
    /// @notice Partial settlement of a `Resolved` bounty before `PARTIAL_SETTLE_DELAY` passed.
    error TooEarly();

    // ------------------------------------------------------------------------------------------
    // Construction
    // ------------------------------------------------------------------------------------------

    /// @param escrow_ The `BountyEscrow` whose bounties this panel evaluates.
    constructor(IPanelEscrow escrow_) {
        if (address(escrow_) == address(0)) revert ZeroAddress();
        escrow = escrow_;
    }

    // ------------------------------------------------------------------------------------------
    // Panel registration
    // ------------------------------------------------------------------------------------------

    /// @notice Registers the panel of the bounty msg.sender will post with `salt` and escrows its
    ///         fee budget `feePerVote * quorum`.
    /// @dev The id is `escrow.bountyIdOf(msg.sender, salt)`, so only the future poster can register
    ///      it. Reverts `PanelExists` if the id already has (or had) a panel, `BountyAlreadyPosted`
    ///      if the escrow already knows the id, `InvalidMemberCount` unless 1 <= members <= 16,
    ///      `ZeroMember` / `DuplicateMember`, `InvalidQuorum` unless 1 <= quorum <= members,
    ///      `InvalidValue` if msg.value is not the budget (ETH) or not 0 (ERC-20), and
    ///      `FeeOnTransferToken` if the panel received less than the budget. Members are stored
    ///      and emitted sorted ascending.
    /// @param salt The salt the bounty will be posted with.
    /// @param members Member keys (any order, distinct, non-zero).
    /// @param quorum Number of member signatures needed for a verdict.
    /// @param token Fee token, address(0) = native ETH.
    /// @param feePerVote Fee paid to each signing member (may be 0).
    /// @return id The bounty id the panel serves.
    function openPanel(
        bytes32 salt,
        address[] calldata members,
        uint8 quorum,
        address token,
        uint128 feePerVote
    ) external payable nonReentrant returns (uint256 id) {
        uint256 size = members.length;
        if (size == 0 || size > MAX_MEMBERS) revert InvalidMemberCount();
        if (quorum == 0 || quorum > size) revert InvalidQuorum();

        id = escrow.bountyIdOf(msg.sender, salt);
        Panel storage p = _panels[id];
        if (p.state != PanelState.None) revert PanelExists();
        (IBountyTypes.Status status,) = escrow.statusOf(id);
        if (status != IBountyTypes.Status.None) revert BountyAlreadyPosted();

        address[] memory sorted = _sortMembers(members);
        p.poster = msg.sender;
        p.quorum = quorum;
        // forge-lint: disable-next-line(unsafe-typecast) -- size <= MAX_MEMBERS checked above
        p.size = uint8(size);
        p.state = PanelState.Active;
        p.token = token;
        p.feePerVote = feePerVote;
        for (uint256 i; i < size; ++i) {
            p.members[i] = sorted[i];
        }
        emit PanelOpened(id, msg.sender, sorted, quorum, token, feePerVote);

        _pull(token, uint256(feePerVote) * quorum);
    }

    /// @notice Withdraws the panel of the bounty msg.sender posted with `salt` and refunds its
    ///         fee budget, once the bounty can no longer be awarded or judged: its escrow status
    ///         is `Cancelled` or `Expired`. A poster that changes its mind before posting burns
    ///         the id first (`post` + `cancel` in the escrow, no funds needed). Bids signed for
    ///         the id name this panel as evaluator, so it must keep judging while one could be
    ///         awarded: cancelling earlier would let a poster award, take the result and be
    ///         refunded after a review window in which nobody can accept.
    /// @dev Reverts `NoPanel` if there is no panel, `AlreadySettled` if it was cancelled or
    ///      settled already, `BountyNotClosed(status)` otherwise.
    /// @param salt The salt the panel was opened with.
    function cancelPanel(bytes32 salt) external nonReentrant {
        uint256 id = escrow.bountyIdOf(msg.sender, salt);
        Panel storage p = _panels[id];
        PanelState state = p.state;
        if (state == PanelState.None) revert NoPanel();
        if (state != PanelState.Active) revert AlreadySettled();
        (IBountyTypes.Status status,) = escrow.statusOf(id);
        if (status != IBountyTypes.Status.Cancelled && status != IBountyTypes.Status.Expired) {
            revert BountyNotClosed(status);
        }

        p.state = PanelState.Cancelled;
        address token = p.token;
        uint256 refunded = uint256(p.feePerVote) * p.quorum;
        emit PanelCancelled(id, msg.sender, refunded);
        _pay(token, msg.sender, refunded);
    }

    // ------------------------------------------------------------------------------------------
    // ERC-1271
    // ------------------------------------------------------------------------------------------

    /// @notice ERC-1271 check used by the escrow for attestations of bounties whose evaluator is
    ///         this contract. Returns 0x1626ba7e iff `signature` decodes to
    ///         `(bountyId, provider, resultHash, verdict, memberSigs)` with
    ///         `escrow.hashAttestation(Attestation(bountyId, provider, resultHash, verdict)) == digest`, the
    ///         panel of `bountyId` is active, and at least `quorum` member signatures over `digest`
    ///         are valid; otherwise 0xffffffff.
    /// @dev Member signatures are 65-byte ECDSA; unrecoverable ones (wrong length, bad s/v) and
    ///      non-members are skipped, never revert. The recovered signers must be strictly
    ///      increasing (no duplicates), else 0xffffffff. Signatures after the quorum-th valid one
    ///      are not inspected. Only a malformed ABI encoding of `signature` reverts (the escrow's
    ///      SignatureChecker treats that as invalid).
    /// @param digest The escrow's EIP-712 attestation digest.
    /// @param signature `abi.encode(uint256 bountyId, address provider, bytes32 resultHash, uint8 verdict,
    ///        bytes[] memberSigs)`.
    /// @return magic 0x1626ba7e if valid, 0xffffffff otherwise.
    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4 magic) {
        (uint256 bountyId, address provider, bytes32 resultHash, uint8 verdict, bytes[] memory memberSigs) =
            abi.decode(signature, (uint256, address, bytes32, uint8, bytes[]));
        if (_attestationDigest(bountyId, provider, resultHash, verdict) != digest) return INVALID_VALUE;
        Panel storage p = _panels[bountyId];
        if (p.state != PanelState.Active) return INVALID_VALUE;
        uint256 quorum = p.quorum;
        (bool sorted, address[] memory signers) = _validSigners(p, digest, memberSigs, quorum);
        return sorted && signers.length >= quorum ? MAGIC_VALUE : INVALID_VALUE;
    }

    // ------------------------------------------------------------------------------------------
    // Fees
    // ------------------------------------------------------------------------------------------

    /// @notice Pays the panel members who signed the verdict that settled bounty `id` and refunds
    ///         the rest of the fee budget to the poster. Anyone may call, once.
    /// @dev `b` must be the escrow's current record of `id` (`escrow.verifyRecord`, else the
    ///      escrow's `BountyMismatch`); its `resultHash` is the attested result. By status:
    ///      - `Completed`: `verdict` must be 1; `Refunded`: `verdict` must be 2. These are only
    ///        reached through a quorum of panel signatures, which are public (the attestation
    ///        calldata), so at least `quorum` valid signatures are required
    ///        (`InsufficientSignatures`): the poster cannot settle without paying the panel.
    ///      - `Resolved` (the arbiter ruled): `verdict` 1 or 2. With fewer than `quorum` valid
    ///        signatures (the panel may never have judged) only after `PARTIAL_SETTLE_DELAY` from
    ///        the ruling (`TooEarly`).
    ///      - `Expired` / `Cancelled`, or a record whose `evaluator` is not this contract (in any
    ///        status): the panel never judged; the poster is refunded the whole budget,
    ///        `verdict` and `memberSigs` are ignored.
    ///      - otherwise `NotTerminal`.
    ///      Signatures are over
    ///      `escrow.hashAttestation(Attestation(id, b.provider, b.resultHash, verdict))`;
    ///      recovered signers must be strictly increasing (`SignersNotSorted`); invalid ones and
    ///      non-members are skipped; the first `quorum` valid member signers are paid `feePerVote`.
    /// @param id Bounty id (= panel id).
    /// @param b Current escrow record of the bounty.
    /// @param verdict Verdict the members signed (1 accept, 2 reject).
    /// @param memberSigs 65-byte ECDSA member signatures, signers strictly increasing.
    function settleFees(
        uint256 id,
        IBountyTypes.Bounty calldata b,
        uint8 verdict,
        bytes[] calldata memberSigs
    ) external nonReentrant {
        Panel storage p = _panels[id];
        PanelState state = p.state;
        if (state == PanelState.None) revert NoPanel();
        if (state != PanelState.Active) revert AlreadySettled();
        IBountyTypes.Status status = escrow.verifyRecord(id, b);

        uint256 quorum = p.quorum;
        uint256 fee = p.feePerVote;
        address[] memory paid;
        uint8 paidVerdict;
        if (
            b.evaluator == address(this) && status != IBountyTypes.Status.Expired
                && status != IBountyTypes.Status.Cancelled
        ) {
            if (status == IBountyTypes.Status.Completed) {
                if (verdict != VERDICT_ACCEPT) revert InvalidVerdict();
            } else if (status == IBountyTypes.Status.Refunded) {
                if (verdict != VERDICT_REJECT) revert InvalidVerdict();
            } else if (status == IBountyTypes.Status.Resolved) {
                if (verdict != VERDICT_ACCEPT && verdict != VERDICT_REJECT) revert InvalidVerdict();
            } else {
                revert NotTerminal();
            }
            bool sorted;
            (sorted, paid) = _validSigners(p, _recordDigest(id, b, verdict), memberSigs, quorum);
            if (!sorted) revert SignersNotSorted();
            if (paid.length < quorum) {
                if (status != IBountyTypes.Status.Resolved) {
                    revert InsufficientSignatures(paid.length, quorum);
                }
                (, uint40 stamp) = escrow.statusOf(id);
                // forge-lint: disable-next-line(block-timestamp) -- a days-long delay
                if (block.timestamp <= uint256(stamp) + PARTIAL_SETTLE_DELAY) revert TooEarly();
            }
            paidVerdict = verdict;
        }

        p.state = PanelState.Settled;
        uint256 n = paid.length;
        uint256 refunded = (quorum - n) * fee;
        address token = p.token;
        emit FeesSettled(id, paidVerdict, paid, fee, refunded);
        for (uint256 i; i < n; ++i) {
            _pay(token, paid[i], fee);
        }
        _pay(token, p.poster, refunded);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice The panel of bounty `id` (all zero if none).
    /// @return poster Who registered the panel and is refunded.
    /// @return members Members, sorted ascending.
    /// @return quorum Signatures needed for a verdict.
    /// @return token Fee token (address(0) = ETH).
    /// @return feePerVote Fee per signing member.
    /// @return feesSettled Whether the fee budget is gone (settled, or the panel was cancelled).
    function panelOf(uint256 id)
        external
        view
        returns (
            address poster,
            address[] memory members,
            uint8 quorum,
            address token,
            uint128 feePerVote,
            bool feesSettled
        )
    {
        Panel storage p = _panels[id];
        uint256 size = p.size;
        members = new address[](size);
        for (uint256 i; i < size; ++i) {
            members[i] = p.members[i];
        }
        return (p.poster, members, p.quorum, p.token, p.feePerVote, uint8(p.state) > uint8(PanelState.Active));
    }

    /// @notice Lifecycle state of the panel of bounty `id`.
    function stateOf(uint256 id) external view returns (PanelState) {
        return _panels[id].state;
    }

    /// @notice Whether `account` is a member of the panel of bounty `id`.
    function isMember(uint256 id, address account) external view returns (bool) {
        Panel storage p = _panels[id];
        uint256 size = p.size;
        for (uint256 i; i < size; ++i) {
            if (p.members[i] == account) return true;
        }
        return false;
    }

    /// @notice Encodes the `evaluatorSig` to pass to the escrow for an attestation by the panel.
    /// @param bountyId Bounty id.
    /// @param provider The provider whose result is judged (the record's `provider`).
    /// @param resultHash Attested result.
    /// @param verdict 1 = accept, 2 = reject.
    /// @param memberSigs Member signatures over the attestation digest, signers strictly increasing.
    function encodeSignature(
        uint256 bountyId,
        address provider,
        bytes32 resultHash,
        uint8 verdict,
        bytes[] calldata memberSigs
    ) external pure returns (bytes memory) {
        return abi.encode(bountyId, provider, resultHash, verdict, memberSigs);
    }

    // ------------------------------------------------------------------------------------------
    // Internal
    // ------------------------------------------------------------------------------------------

    /// @dev The escrow's EIP-712 digest of Attestation(bountyId, provider, resultHash, verdict).
    function _attestationDigest(uint256 bountyId, address provider, bytes32 resultHash, uint8 verdict)
        internal
        view
        returns (bytes32)
    {
        return escrow.hashAttestation(
            IBountyTypes.Attestation({
                bountyId: bountyId, provider: provider, resultHash: resultHash, verdict: verdict
            })
        );
    }

    /// @dev The attestation digest of `verdict` on the result and provider of record `b`.
    function _recordDigest(uint256 id, IBountyTypes.Bounty calldata b, uint8 verdict)
        internal
        view
        returns (bytes32)
    {
        return _attestationDigest(id, b.provider, b.resultHash, verdict);
    }

    /// @dev Copies `members` to memory sorted ascending (insertion sort, n <= 16), rejecting zero
    ///      and duplicate addresses.
    function _sortMembers(address[] calldata members) internal pure returns (address[] memory sorted) {
        uint256 n = members.length;
        sorted = new address[](n);
        for (uint256 i; i < n; ++i) {
            address m = members[i];
            if (m == address(0)) revert ZeroMember();
            uint256 j = i;
            while (j != 0 && sorted[j - 1] > m) {
                sorted[j] = sorted[j - 1];
                --j;
            }
            if (j != 0 && sorted[j - 1] == m) revert DuplicateMember(m);
            sorted[j] = m;
        }
    }

    /// @dev Walks `sigs` and returns the valid member signers over `digest`, in order, stopping at
    ///      `limit` of them. Unrecoverable signatures are skipped; non-members are skipped but take
    ///      part in the ordering check. `sorted` is false (and the walk stops) as soon as a
    ///      recovered signer is not strictly greater than the previous one. Members are sorted,
    ///      so one forward pass over them suffices.
    function _validSigners(Panel storage p, bytes32 digest, bytes[] memory sigs, uint256 limit)
        internal
        view
        returns (bool sorted, address[] memory signers)
    {
        signers = new address[](limit);
        uint256 count;
        uint256 size = p.size;
        uint256 j; // next member to compare; members below it are smaller than every later signer
        address last;
        uint256 n = sigs.length;
        for (uint256 i; i < n && count < limit; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, sigs[i]);
            if (err != ECDSA.RecoverError.NoError) continue;
            if (signer <= last) {
                _truncate(signers, count);
                return (false, signers);
            }
            last = signer;
            // Member slots are read lazily, each at most once cold.
            while (j < size) {
                address member = p.members[j];
                if (member >= signer) {
                    if (member == signer) {
                        signers[count++] = signer;
                        ++j;
                    }
                    break;
                }
                ++j;
            }
        }
        _truncate(signers, count);
        return (true, signers);
    }

    /// @dev Shrinks a memory array to its first `length` elements.
    function _truncate(address[] memory arr, uint256 length) internal pure {
        assembly ("memory-safe") {
            mstore(arr, length)
        }
    }
}
