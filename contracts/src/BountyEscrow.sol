// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IBountyLedger} from "./interfaces/IBountyLedger.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {PullLedger} from "./utils/PullLedger.sol";

/// @title Reef bounty escrow
/// @notice Escrows bounty rewards (native ETH or ERC-20) for work done by software agents.
///
///         Storage model: ONE word per bounty. The word is `keccak256(abi.encode(bounty))` whose low
///         49 bits are replaced by a flag (bit 48: the provider pledged part of its reward, see
///         below), a uint40 timestamp (`stamp`, bits 8..47) and the uint8 `Status` (bits 0..7).
///         Every call acting on a bounty passes the current `Bounty` record in calldata;
///         the escrow re-hashes it, compares the upper 207 bits with the stored word and reverts with
///         `BountyMismatch` on any difference. Events carry everything needed to rebuild the record:
///         `BountyPosted` carries the full record, `BountyAwarded` sets `provider`/`price` (again
///         after a take-over, preceded by `AwardRevoked`),
///         `ResultSubmitted` / `BountyAttested` set `resultHash`.
///
///         Ids are `uint256(keccak256(abi.encode(poster, salt)))`, so bids can be signed before the
///         bounty exists on-chain. A bid also commits to the bounty's terms: `Bid.termsHash` must be
///         the commitment (`hashBounty`) of the record as posted, so the poster cannot change the
///         token, amount, spec, evaluator, arbiter, windows or deadline after the bidder signed.
///
///         Payouts never block: every outgoing transfer is attempted once; if it fails the amount is
///         credited to `withdrawable[token][account]` and can be pulled with `withdraw`. Platform fees
///         accrue per token (`accruedFees`, never pushed on the hot path); `collectFees` pays them
///         to the fee recipient.
///
///         Sub-bounties from a pending reward: the provider of an awarded auction may fund
///         sub-bounties with part of the reward it has not been paid yet (`postFromReward`). Such a
///         sub-bounty's token is a pledge token (`pledgeTokenOf`, an address without code), so all
///         its payouts land in the ledger as pledge credits. The parent's settlement holds the
///         pledged amount back from its provider's pay; only then are the credits redeemable for
///         the parent's token (`redeemPledge`). A parent that fails refunds its poster in full and
///         leaves the credits void: the escrow never pays for a sub-task out of a reward that was
///         not earned.
///
///         Timing conventions (all inclusive/exclusive bounds are deliberate):
///         - fund / award / submit / submitEntry: `block.timestamp <= deadline`.
///         - reassign / revokeAward: `dueBy < block.timestamp <= deadline`, where `dueBy` (the
///           stamp of an `Awarded` record) is the award time plus the winning bid's `eta`.
///         - refundExpired: `block.timestamp > deadline` (contests: `> deadline + reviewWindow`).
///         - attest, and dispute from `Submitted`: `block.timestamp <= stamp + reviewWindow`;
///           claimAfterReview: `block.timestamp > stamp + reviewWindow`.
///         - dispute from `Rejected`: `block.timestamp <= stamp + challengeWindow`;
///           finalizeRejection: `block.timestamp > stamp + challengeWindow`.
///         - pickWinners: `deadline < block.timestamp <= deadline + reviewWindow`.
contract BountyEscrow is IBountyLedger, EIP712, Ownable2Step, PullLedger {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------------------------------
    // Constants
    // ------------------------------------------------------------------------------------------

    /// @notice Basis-point denominator.
    uint256 public constant BPS = 10_000;
    /// @notice Maximum platform fee (10%).
    uint16 public constant MAX_FEE_BPS = 1_000;
    /// @notice Maximum number of winners of a contest.
    uint8 public constant MAX_CONTEST_WINNERS = 32;

    /// @notice EIP-712 type hash of `Bid`.
    bytes32 public constant BID_TYPEHASH = keccak256(
        "Bid(uint256 bountyId,bytes32 termsHash,address bidder,uint256 amount,uint64 deadline,uint32 eta,uint256 bond,uint256 nonce)"
    );
    /// @notice EIP-712 type hash of `Attestation`.
    bytes32 public constant ATTESTATION_TYPEHASH =
        keccak256("Attestation(uint256 bountyId,address provider,bytes32 resultHash,uint8 verdict)");

    /// @dev Domain tag of pledge token addresses.
    bytes32 internal constant PLEDGE_TAG = keccak256("ReefBountyEscrow.pledge");

    /// @dev Verdict values of an `Attestation`.
    uint8 internal constant VERDICT_ACCEPT = 1;
    uint8 internal constant VERDICT_REJECT = 2;

    /// @dev Low 48 bits of a record word: uint40 stamp (bits 8..47) and uint8 status (bits 0..7).
    uint256 internal constant META_MASK = (1 << 48) - 1;
    /// @dev Bit 48 of a record word: its provider pledged part of the reward to sub-bounties, so
    ///      the settlement looks the pledge up (only then: the common path reads no extra slot).
    uint256 internal constant PLEDGED = 1 << 48;
    /// @dev The commitment is the word's upper 207 bits (above the flag).
    uint256 internal constant COMMIT_SHIFT = 49;
    /// @dev Low bits a fresh word rebuilds: flag, stamp and status.
    uint256 internal constant LOW_MASK = (1 << COMMIT_SHIFT) - 1;
    /// @dev Largest stamp a record word holds (uint40).
    uint64 internal constant MAX_STAMP = type(uint40).max;
    /// @dev Size of the ABI encoding of the static `Bounty` tuple (15 words).
    uint256 internal constant BOUNTY_SIZE = 480;
    /// @dev Byte offsets of the fields patched on award / submission inside the encoding.
    uint256 internal constant PRICE_OFFSET = 96;
    uint256 internal constant PROVIDER_OFFSET = 128;
    uint256 internal constant RESULT_OFFSET = 448;
    /// @dev Byte offsets of the fields `_emitPosted` validates.
    uint256 internal constant ARBITER_OFFSET = 192;
    uint256 internal constant REVIEW_OFFSET = 256;
    uint256 internal constant CHALLENGE_OFFSET = 288;

    // ------------------------------------------------------------------------------------------
    // Immutables and storage
    // ------------------------------------------------------------------------------------------

    /// @notice Stake registry used for the stake gate and slashing (address(0) = none).
    IStakeRegistry public immutable stakeRegistry;
    /// @notice Native-ETH bond the escalating party posts with `dispute`.
    uint256 public immutable disputeBond;
    /// @notice Share of the awarded bid's `bond` (stake units, never the reward token) slashed
    ///         from a provider that loses a dispute.
    uint16 public immutable slashBps;

    /// @dev Fee settings and the stake gate packed in one slot (one SLOAD on the hot paths).
    struct Config {
        address feeRecipient;
        uint16 feeBps;
        uint80 minBond; // stake-registry wei every award must bond (0 = no gate)
    }

    Config internal _config;

    /// @notice Stake (registry wei) the current provider of an auction bonded with its bid, as
    ///         signed in `Bid.bond`; written only when non-zero. `resolve` slashes from it.
    mapping(uint256 bountyId => uint256) public bondOf;

    /// @dev bountyId => packed record word (commitment | stamp << 8 | status).
    mapping(uint256 => uint256) internal _records;

    /// @notice Platform fees accrued per token since the last `collectFees`. Settlements add to
    ///         this pool without reading the fee recipient (one storage slot per token).
    mapping(address token => uint256) public accruedFees;

    /// @notice Permit2-style unordered nonces: bidder => word position => bitmap.
    mapping(address bidder => mapping(uint256 wordPos => uint256)) public nonceBitmap;

    /// @notice Party that escalated a bounty currently in `Disputed` (cleared on resolution).
    mapping(uint256 bountyId => address) public disputeOpener;

    /// @notice Contest entries: bountyId => entrant => result hash.
    mapping(uint256 bountyId => mapping(address entrant => bytes32)) public entries;

    /// @notice Number of entries submitted to a contest.
    mapping(uint256 bountyId => uint256) public entryCount;

    /// @notice A provider's promise of part of its pending reward to its sub-bounties.
    /// @param pledged Total amount of the sub-bounties funded from the reward.
    /// @param backed What the parent's settlement held back for them: `pledged` when the parent
    ///        completed, less (or 0) after a split ruling; 0 until then and if the parent failed.
    struct Pledge {
        uint128 pledged;
        uint128 backed;
    }

    /// @notice Where a pledge token's value comes from: the parent bounty, its reward token and
    ///         the provider whose reward it is.
    struct PledgeSource {
        uint256 parentId;
        address token;
        address provider;
    }

    /// @notice Pledges by pledge token (see `pledgeTokenOf`).
    mapping(address pledgeToken => Pledge) public pledges;

    /// @notice Source of each pledge token that has been used.
    mapping(address pledgeToken => PledgeSource) public pledgeSources;

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /// @notice A bounty was created. `record` is the full record as committed at creation
    ///         (before any award); `funded` tells whether it was funded in the same call.
    event BountyPosted(
        uint256 indexed id, address indexed poster, address indexed token, Bounty record, bool funded
    );
    /// @notice An `Open` bounty was funded by `funder`.
    event BountyFunded(uint256 indexed id, address indexed funder, uint256 amount);
    /// @notice A bid was accepted: `provider` and `price` are now part of the record. `dueBy` is
    ///         when delivery is due (award time + the bid's `eta`, capped at the deadline and at
    ///         `type(uint40).max`, the record's stamp width); after it the poster or the evaluator
    ///         may hand the job to another bidder (`reassign`) or refund the poster (`revokeAward`).
    event BountyAwarded(
        uint256 indexed id, address indexed provider, uint256 price, uint256 bidNonce, uint64 dueBy
    );
    /// @notice `provider` missed its delivery time (`dueBy`) and lost the job.
    event AwardRevoked(uint256 indexed id, address indexed provider, uint64 dueBy);
    /// @notice The provider submitted `resultHash` (now part of the record).
    event ResultSubmitted(uint256 indexed id, address indexed provider, bytes32 resultHash);
    /// @notice A contest entry was submitted.
    event EntrySubmitted(uint256 indexed id, address indexed entrant, bytes32 resultHash);
    /// @notice A verdict was recorded. Emitted by `submitAndAttest` instead of `ResultSubmitted`:
    ///         there `resultHash` is also the newly submitted result.
    event BountyAttested(uint256 indexed id, address indexed evaluator, uint8 verdict, bytes32 resultHash);
    /// @notice The bounty was settled in the provider's favour (or a contest was paid out:
    ///         then `provider` is address(0) and `paid`/`fee` are totals over all winners).
    ///         `paid` includes what was held back for the provider's pledge (`PledgeBacked`).
    event BountyCompleted(
        uint256 indexed id, address indexed provider, uint256 paid, uint256 fee, uint256 refunded
    );
    /// @notice The result was rejected. `challengeUntil` is the last second the provider may
    ///         dispute, or 0 if the poster was refunded at once.
    event BountyRejected(uint256 indexed id, address indexed provider, uint256 challengeUntil);
    /// @notice The poster was refunded `amount`; `reason` is the new terminal status
    ///         (`Refunded` after a rejection, `Expired` after a deadline or a silent evaluator).
    event BountyRefunded(uint256 indexed id, address indexed poster, uint256 amount, Status reason);
    /// @notice The poster cancelled the bounty and was refunded `refunded`.
    event BountyCancelled(uint256 indexed id, address indexed poster, uint256 refunded);
    /// @notice A dispute was opened by `by`, who posted `bond` wei.
    event DisputeOpened(uint256 indexed id, address indexed by, uint256 bond);
    /// @notice The arbiter ruled. `toProvider` is net of `fee`.
    event DisputeResolved(
        uint256 indexed id,
        uint16 providerBps,
        uint256 toProvider,
        uint256 toPoster,
        uint256 fee,
        uint256 slashed
    );
    /// @notice The stake registry's `slash` reverted during `resolve`; the ruling was settled
    ///         anyway without slashing (`slashed` = 0 in `DisputeResolved`).
    event SlashFailed(uint256 indexed id, address indexed provider, uint256 amount);
    /// @notice A contest winner was paid (net of `fee`).
    event WinnerPaid(uint256 indexed id, address indexed winner, uint256 paid, uint256 fee);
    /// @notice Sub-bounty `id` was funded with `amount` of `provider`'s pending reward on
    ///         `parentId`; its `token` is `pledgeToken`, whose credits are redeemed with
    ///         `redeemPledge` once the parent is settled.
    event RewardPledged(
        uint256 indexed id,
        uint256 indexed parentId,
        address indexed provider,
        address pledgeToken,
        uint256 amount
    );
    /// @notice The parent's settlement held back `amount` of its provider's pay for the pledge.
    event PledgeBacked(address indexed pledgeToken, uint256 indexed parentId, uint256 amount);
    /// @notice `account` redeemed `credit` pledge-token credits for `paid` of the parent's token.
    event PledgeRedeemed(address indexed pledgeToken, address indexed account, uint256 credit, uint256 paid);
    /// @notice `bidder` invalidated the nonces set in `mask` at `wordPos`.
    event NonceInvalidated(address indexed bidder, uint256 indexed wordPos, uint256 mask);
    /// @notice The fees accrued in `token` were paid to `recipient` (pushed, or credited to its
    ///         ledger entry with `PayoutDeferred` if the push failed, as always for a pledge token).
    event FeesCollected(address indexed token, address indexed recipient, uint256 amount);
    /// @notice Platform fee settings changed.
    event FeeUpdated(uint16 feeBps, address indexed recipient);
    /// @notice Stake gate changed: every award must bond at least `minBond` stake-registry wei
    ///         (covered by the bidder's stake), every contest entrant must hold that much stake.
    event StakeGateUpdated(uint256 minBond);

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    error BountyMismatch();
    error BountyExists();
    error InvalidStatus(Status status);
    error NotPoster();
    error NotProvider();
    error NotEvaluator();
    error NotArbiter();
    error NotParty();
    error NotPosterOrEvaluator();
    error SameProvider();
    error ZeroAmount();
    error ZeroResult();
    error InvalidDeadline();
    error InvalidTerms();
    error WrongMode();
    error FeeMismatch();
    error FeeTooHigh();
    error InvalidBps();
    error TooEarly();
    error TooLate();
    error BidMismatch();
    error BidExpired();
    error BidTooHigh();
    error NonceUsed();
    error InvalidSignature();
    error InsufficientStake();
    error BondTooLow();
    error InvalidBond();
    error BidderIsEvaluator();
    error InvalidVerdict();
    error NoArbiter();
    error AlreadyEntered();
    error HasEntries();
    error NoEntry(address winner);
    error DuplicateWinner(address winner);
    error InvalidWinners();
    error InvalidShares();
    error NotPledgeToken();
    error PledgeTooHigh(uint256 available);
    error PledgeVoid();
    error PledgePending(Status parentStatus);

    // ------------------------------------------------------------------------------------------
    // Construction and admin
    // ------------------------------------------------------------------------------------------

    /// @param owner_ Admin (Ownable2Step).
    /// @param feeRecipient_ Account credited with platform fees.
    /// @param feeBps_ Platform fee in basis points (<= MAX_FEE_BPS).
    /// @param stakeRegistry_ Stake registry (address(0) disables stake gating and slashing).
    /// @param disputeBond_ Native-ETH bond required to open a dispute.
    /// @param slashBps_ Share of the provider's signed bond slashed when it loses a dispute (<= 10000).
    constructor(
        address owner_,
        address feeRecipient_,
        uint16 feeBps_,
        IStakeRegistry stakeRegistry_,
        uint256 disputeBond_,
        uint16 slashBps_
    ) EIP712("ReefBountyEscrow", "1") Ownable(owner_) {
        if (slashBps_ > BPS) revert InvalidBps();
        stakeRegistry = stakeRegistry_;
        disputeBond = disputeBond_;
        slashBps = slashBps_;
        _setFee(feeBps_, feeRecipient_);
    }

    /// @notice Sets the platform fee applied to bounties posted from now on, and its recipient.
    /// @dev Only owner. Reverts `FeeTooHigh` above MAX_FEE_BPS, `ZeroAddress` for a zero recipient.
    ///      Existing bounties keep their `feeBps` snapshot. Fees accrue per token and go to the
    ///      recipient current when they are collected (`collectFees`): collect before changing
    ///      the recipient to pay what accrued so far to the old one.
    function setFee(uint16 newFeeBps, address recipient) external onlyOwner {
        _setFee(newFeeBps, recipient);
    }

    /// @notice Sets the stake gate, in stake-registry units (never in a reward token, whose
    ///         value the escrow cannot know): every award's bid must bond at least `minBond_`
    ///         (and the bidder's stake must cover its bond), every contest entrant must hold
    ///         `minBond_` of stake. 0 disables the gate; bonds a bidder signs are checked anyway.
    /// @dev Only owner. Reverts `InvalidBond` above 2^80 - 1 (packed in 80 bits) and `ZeroAddress`
    ///      for a non-zero gate without a stake registry.
    function setStakeGate(uint256 minBond_) external onlyOwner {
        if (minBond_ > type(uint80).max) revert InvalidBond();
        if (minBond_ != 0 && address(stakeRegistry) == address(0)) revert ZeroAddress();
        _config.minBond = uint80(minBond_);
        emit StakeGateUpdated(minBond_);
    }

    function _setFee(uint16 newFeeBps, address recipient) internal {
        if (newFeeBps > MAX_FEE_BPS) revert FeeTooHigh();
        if (recipient == address(0)) revert ZeroAddress();
        _config.feeBps = newFeeBps;
        _config.feeRecipient = recipient;
        emit FeeUpdated(newFeeBps, recipient);
    }

    // ------------------------------------------------------------------------------------------
    // Creation and funding
    // ------------------------------------------------------------------------------------------

    /// @notice Creates an unfunded bounty (status `Open`). Anyone may fund it later with `fund`.
    /// @param salt Caller-chosen salt; the id is `bountyIdOf(msg.sender, salt)`.
    /// @param terms Full record: `poster` must be msg.sender, `feeBps` the current fee,
    ///        `price`/`provider`/`resultHash` zero.
    /// @return id The bounty id.
    function post(bytes32 salt, Bounty calldata terms) external returns (uint256 id) {
        id = _checkNew(salt, terms, _config.feeBps);
        _records[id] = _word(_hash(terms), Status.Open);
        _emitPosted(id, terms, terms.token, false);
    }

    /// @notice Funds an `Open` bounty with exactly `b.amount` (ETH via msg.value, or ERC-20 pulled
    ///         from msg.sender). Anyone may fund; refunds always go to `b.poster`.
    /// @param id Bounty id.
    /// @param b Current record.
    function fund(uint256 id, Bounty calldata b) external payable nonReentrant {
        uint256 word = _load(id, b);
        _expect(word, Status.Open);
        if (block.timestamp > b.deadline) revert TooLate();
        _records[id] = _restamp(word, Status.Funded);
        _pull(b.token, b.amount);
        emit BountyFunded(id, msg.sender, b.amount);
    }

    /// @notice Creates and funds a bounty in one call (status `Funded`). The common path.
    /// @param salt Caller-chosen salt; the id is `bountyIdOf(msg.sender, salt)`.
    /// @param terms Full record (see `post`). ETH bounties send exactly `terms.amount` as msg.value.
    /// @return id The bounty id.
    function postAndFund(bytes32 salt, Bounty calldata terms)
        external
        payable
        nonReentrant
        returns (uint256 id)
    {
        id = _checkNew(salt, terms, _config.feeBps);
        _records[id] = _word(_hash(terms), Status.Funded);
        _emitPosted(id, terms, terms.token, true);
        _pull(terms.token, terms.amount);
    }

    /// @notice Creates, funds and awards an auction bounty in one call, using a bid gathered
    ///         off-chain for the id `bountyIdOf(msg.sender, salt)` (status `Awarded`).
    /// @param salt Caller-chosen salt.
    /// @param terms Full record as posted (see `post`); must be an auction.
    /// @param bid The winning bid (EIP-712 signed by `bid.bidder`); `bid.termsHash` must be
    ///        `hashBounty(terms)`.
    /// @param bidSig The bidder's signature (65-byte ECDSA, or anything its ERC-1271 wallet accepts).
    /// @return id The bounty id.
    function postFundAndAward(bytes32 salt, Bounty calldata terms, Bid calldata bid, bytes calldata bidSig)
        external
        payable
        nonReentrant
        returns (uint256 id)
    {
        Config memory c = _config;
        id = _checkNew(salt, terms, c.feeBps);
        if (terms.mode != Mode.Auction) revert WrongMode();
        (bytes32 posted, bytes32 awarded) = _hashTermsAndAwarded(terms, bid.amount, bid.bidder);
        _checkBid(id, posted, terms.amount, bid, bidSig, c.minBond);
        uint64 due = _dueBy(terms.deadline, bid.eta);
        _records[id] = _wordAt(awarded, Status.Awarded, due);
        if (bid.bond != 0) bondOf[id] = bid.bond;
        _emitPosted(id, terms, terms.token, true);
        emit BountyAwarded(id, bid.bidder, bid.amount, bid.nonce, due);
        _pull(terms.token, terms.amount);
    }

    // ------------------------------------------------------------------------------------------
    // Auction flow
    // ------------------------------------------------------------------------------------------

    /// @notice Accepts a signed bid: sets `provider = bid.bidder` and `price = bid.amount`.
    ///         If `price < amount`, the difference is returned to the poster at settlement.
    /// @dev Only the poster, status `Funded`, auction mode, not after the deadline. The bid must
    ///      commit to this record (`bid.termsHash == hashBounty(b)`, else `BidMismatch`). Consumes
    ///      the bidder's nonce; the bidder's stake must cover `bid.bond` (at least `minBond`).
    /// @param id Bounty id.
    /// @param b Current record.
    /// @param bid The bid.
    /// @param sig The bidder's EIP-712 signature over `bid`.
    function award(uint256 id, Bounty calldata b, Bid calldata bid, bytes calldata sig) external {
        (bytes32 posted, bytes32 awarded) = _hashTermsAndAwarded(b, bid.amount, bid.bidder);
        uint256 word = _records[id];
        if ((word ^ uint256(posted)) >> COMMIT_SHIFT != 0) revert BountyMismatch();
        if (msg.sender != b.poster) revert NotPoster();
        _expect(word, Status.Funded);
        if (b.mode != Mode.Auction) revert WrongMode();
        if (block.timestamp > b.deadline) revert TooLate();
        _checkBid(id, posted, b.amount, bid, sig, _config.minBond);
        uint64 due = _dueBy(b.deadline, bid.eta);
        _records[id] = _wordAt(awarded, Status.Awarded, due);
        if (bid.bond != 0) bondOf[id] = bid.bond;
        emit BountyAwarded(id, bid.bidder, bid.amount, bid.nonce, due);
    }

    /// @notice Take-over: hands an overdue job to another bidder. The current provider promised
    ///         delivery by the award's `dueBy` (its bid's `eta`) and has not submitted; the next
    ///         bid (signed for the record as posted, like any bid) becomes the award, with a new
    ///         `dueBy`. The late provider's miss is on-chain (`AwardRevoked`) for reputation.
    /// @dev Only the poster or the evaluator (who already decides whether work is paid); status
    ///      `Awarded`, `dueBy < now <= deadline`; the new bidder must differ from the provider and
    ///      from the evaluator (`BidderIsEvaluator`). Applies the same bid checks as `award`
    ///      (nonce, expiry, signature, stake gate); the new price may reach the budget when the
    ///      poster calls, but not the current price when the evaluator does (`BidTooHigh`): the
    ///      evaluator cannot make the poster pay more than it agreed to. The new bid's `bond`
    ///      replaces the late provider's.
    /// @param id Bounty id.
    /// @param b Current record (with the late provider and its price).
    /// @param bid The replacement bid.
    /// @param sig The new bidder's EIP-712 signature over `bid`.
    function reassign(uint256 id, Bounty calldata b, Bid calldata bid, bytes calldata sig) external {
        uint256 word = _load(id, b);
        uint64 overdue = _checkOverdue(word, b);
        if (bid.bidder == b.provider) revert SameProvider();
        if (bid.bidder == b.evaluator) revert BidderIsEvaluator();
        (bytes32 posted, bytes32 awarded) = _hashPostedAndAwarded(b, bid.amount, bid.bidder);
        _checkBid(id, posted, msg.sender == b.poster ? b.amount : b.price, bid, sig, _config.minBond);
        uint64 due = _dueBy(b.deadline, bid.eta);
        // The late provider's pledge is void unless it gets the job back; a bidder that pledged
        // while it held this job before finds its pledge in force again.
        uint256 pledged = pledges[pledgeTokenOf(id, bid.bidder)].pledged == 0 ? 0 : PLEDGED;
        _records[id] = _wordAt(awarded, Status.Awarded, due) | pledged;
        if (bid.bond != 0 || bondOf[id] != 0) bondOf[id] = bid.bond;
        emit AwardRevoked(id, b.provider, overdue);
        emit BountyAwarded(id, bid.bidder, bid.amount, bid.nonce, due);
    }

    /// @notice Ends an overdue job without a replacement: the poster is refunded in full
    ///         (`Expired`) and the late provider's miss is recorded (`AwardRevoked`).
    /// @dev Only the poster or the evaluator; status `Awarded`, `dueBy < now <= deadline` (after
    ///      the deadline anyone may call `refundExpired`).
    /// @param id Bounty id.
    /// @param b Current record.
    function revokeAward(uint256 id, Bounty calldata b) external nonReentrant {
        uint256 word = _load(id, b);
        uint64 overdue = _checkOverdue(word, b);
        _records[id] = _restamp(word, Status.Expired);
        emit AwardRevoked(id, b.provider, overdue);
        _refund(id, b, Status.Expired);
    }

    /// @notice The provider submits its result (status `Submitted`, review window starts).
    /// @dev Only the provider, status `Awarded`, not after the deadline, `resultHash != 0`.
    /// @param id Bounty id.
    /// @param b Current record.
    /// @param resultHash Hash of the delivered result.
    function submit(uint256 id, Bounty calldata b, bytes32 resultHash) external {
        uint256 word = _load(id, b);
        _checkSubmission(word, b, resultHash);
        _records[id] = _word(_hashSubmitted(b, resultHash), Status.Submitted) | (word & PLEDGED);
        emit ResultSubmitted(id, msg.sender, resultHash);
    }

    /// @notice Records the evaluator's verdict on a submitted result. Anyone may relay it.
    ///         Verdict 1 accepts (provider paid `price - fee`, poster refunded `amount - price`);
    ///         verdict 2 rejects (poster refunded at once if there is no arbiter or no challenge
    ///         window, otherwise status `Rejected` until the challenge window ends).
    /// @dev Status `Submitted`, within the review window. `evaluatorSig` is the evaluator's EIP-712
    ///      signature over Attestation(id, b.provider, b.resultHash, verdict) (ECDSA or ERC-1271); it is ignored
    ///      when msg.sender is the evaluator.
    /// @param id Bounty id.
    /// @param b Current record (with `resultHash` set).
    /// @param verdict 1 = accept, 2 = reject.
    /// @param evaluatorSig Evaluator signature (may be empty if msg.sender == evaluator).
    function attest(uint256 id, Bounty calldata b, uint8 verdict, bytes calldata evaluatorSig)
        external
        nonReentrant
    {
        uint256 word = _load(id, b);
        _expect(word, Status.Submitted);
        if (block.timestamp > _stampOf(word) + b.reviewWindow) revert TooLate();
        _checkAttestation(id, b, b.resultHash, verdict, evaluatorSig);
        emit BountyAttested(id, b.evaluator, verdict, b.resultHash);
        _applyVerdict(id, b, bytes32(word), word & PLEDGED, verdict);
    }

    /// @notice The provider submits its result together with the evaluator's attestation and is
    ///         settled in the same transaction (the lean path). Emits `BountyAttested` (carrying
    ///         the result hash) instead of `ResultSubmitted`.
    /// @dev Only the provider, status `Awarded`, not after the deadline.
    /// @param id Bounty id.
    /// @param b Current record (`resultHash` still zero).
    /// @param resultHash Hash of the delivered result.
    /// @param verdict 1 = accept, 2 = reject.
    /// @param evaluatorSig Evaluator's EIP-712 signature over Attestation(id, b.provider, resultHash, verdict).
    function submitAndAttest(
        uint256 id,
        Bounty calldata b,
        bytes32 resultHash,
        uint8 verdict,
        bytes calldata evaluatorSig
    ) external nonReentrant {
        uint256 word = _load(id, b);
        _checkSubmission(word, b, resultHash);
        _checkAttestation(id, b, resultHash, verdict, evaluatorSig);
        emit BountyAttested(id, b.evaluator, verdict, resultHash);
        _applyVerdict(id, b, _hashSubmitted(b, resultHash), word & PLEDGED, verdict);
    }

    /// @notice Settles a submitted bounty whose review window passed without a verdict.
    ///         If the evaluator is the poster, silence counts as acceptance (provider paid,
    ///         `Completed`). If the evaluator is a third party, silence means the result could not
    ///         be verified: the poster is refunded in full (`Expired`). Anyone may call.
    /// @dev Status `Submitted`, `block.timestamp > stamp + reviewWindow`.
    /// @param id Bounty id.
    /// @param b Current record.
    function claimAfterReview(uint256 id, Bounty calldata b) external nonReentrant {
        uint256 word = _load(id, b);
        _expect(word, Status.Submitted);
        if (block.timestamp <= _stampOf(word) + b.reviewWindow) revert TooEarly();
        if (b.evaluator == b.poster) {
            _records[id] = _restamp(word, Status.Completed);
            _settle(id, b, word & PLEDGED);
        } else {
            _records[id] = _restamp(word, Status.Expired);
            _refund(id, b, Status.Expired);
        }
    }

    /// @notice Refunds the poster of a rejected bounty once the challenge window has passed.
    ///         Anyone may call.
    /// @dev Status `Rejected`, `block.timestamp > stamp + challengeWindow` → `Refunded`.
    /// @param id Bounty id.
    /// @param b Current record.
    function finalizeRejection(uint256 id, Bounty calldata b) external nonReentrant {
        uint256 word = _load(id, b);
        _expect(word, Status.Rejected);
        if (block.timestamp <= _stampOf(word) + b.challengeWindow) revert TooEarly();
        _records[id] = _restamp(word, Status.Refunded);
        _refund(id, b, Status.Refunded);
    }

    /// @notice Expires a bounty nobody delivered on and refunds the poster. Anyone may call.
    /// @dev Status `Open` (nothing to refund), `Funded` or `Awarded`; after `deadline`
    ///      (contests: after `deadline + reviewWindow`, the winner-picking window) → `Expired`.
    /// @param id Bounty id.
    /// @param b Current record.
    function refundExpired(uint256 id, Bounty calldata b) external nonReentrant {
        uint256 word = _load(id, b);
        Status s = Status(uint8(word));
        if (s != Status.Open && s != Status.Funded && s != Status.Awarded) revert InvalidStatus(s);
        uint256 end = b.deadline;
        if (b.mode == Mode.Contest) end += b.reviewWindow;
        if (block.timestamp <= end) revert TooEarly();
        _records[id] = _restamp(word, Status.Expired);
        if (s == Status.Open) emit BountyRefunded(id, b.poster, 0, Status.Expired);
        else _refund(id, b, Status.Expired);
    }

    /// @notice The poster cancels a bounty that has no provider yet and is refunded.
    /// @dev Only the poster; status `Open` or `Funded`; contests only while they have no entries.
    /// @param id Bounty id.
    /// @param b Current record.
    function cancel(uint256 id, Bounty calldata b) external nonReentrant {
        uint256 word = _load(id, b);
        if (msg.sender != b.poster) revert NotPoster();
        Status s = Status(uint8(word));
        if (s != Status.Open && s != Status.Funded) revert InvalidStatus(s);
        if (entryCount[id] != 0) revert HasEntries();
        _records[id] = _restamp(word, Status.Cancelled);
        uint256 refunded = s == Status.Funded ? b.amount : 0;
        emit BountyCancelled(id, msg.sender, refunded);
        _pay(b.token, msg.sender, refunded);
    }

    // ------------------------------------------------------------------------------------------
    // Sub-bounties funded from a pending reward
    // ------------------------------------------------------------------------------------------

    /// @notice The provider of an `Awarded` auction posts a sub-bounty funded with part of its
    ///         pending reward (status `Funded`, nothing transferred). The reward is not paid yet
    ///         and may never be, so the sub-bounty is denominated in a pledge token,
    ///         `pledgeTokenOf(parentId, provider)`: every payout of the sub-bounty (its provider,
    ///         the refund to its poster, the platform fee) is a credit in that token, and a credit
    ///         is worth the parent's token only once the parent settles in the provider's favour
    ///         (`redeemPledge`). If the parent fails, or another provider takes it over, the
    ///         parent's poster is refunded in full and the credits are void. Bidders see the token
    ///         in the terms they sign, so they know the payment is contingent.
    /// @dev Only `parent.provider`, parent status `Awarded`, not after the parent's deadline.
    ///      `terms` as for `post` with `token == pledgeTokenOf(parentId, msg.sender)`; all the
    ///      sub-bounties of one parent and provider together may pledge at most the provider's
    ///      net pay (`price` less the parent's fee).
    /// @param salt Caller-chosen salt; the id is `bountyIdOf(msg.sender, salt)`.
    /// @param terms The sub-bounty's record.
    /// @param parentId The bounty whose reward funds it.
    /// @param parent The parent's current record.
    /// @return id The sub-bounty's id.
    function postFromReward(bytes32 salt, Bounty calldata terms, uint256 parentId, Bounty calldata parent)
        external
        returns (uint256 id)
    {
        uint256 pword = _load(parentId, parent);
        if (msg.sender != parent.provider) revert NotProvider();
        _expect(pword, Status.Awarded);
        if (block.timestamp > parent.deadline) revert TooLate();
        id = _checkNew(salt, terms, _config.feeBps);
        address pt = pledgeTokenOf(parentId, msg.sender);
        if (terms.token != pt) revert NotPledgeToken();
        Pledge storage pl = pledges[pt];
        uint256 before = pl.pledged;
        uint256 net = uint256(parent.price) - uint256(parent.price) * parent.feeBps / BPS;
        // After a take-over back at a lower price `before` may exceed `net`: nothing is left.
        if (before + terms.amount > net) revert PledgeTooHigh(net > before ? net - before : 0);
        if (before == 0) pledgeSources[pt] = PledgeSource(parentId, parent.token, msg.sender);
        if (pword & PLEDGED == 0) _records[parentId] = pword | PLEDGED;
        pl.pledged = uint128(before + terms.amount);
        _records[id] = _word(_hash(terms), Status.Funded);
        _emitPosted(id, terms, pt, true);
        emit RewardPledged(id, parentId, msg.sender, pt, terms.amount);
    }

    /// @notice Turns the caller's credits in `pledgeToken` into the parent's token, at the rate
    ///         the parent's settlement backed them (`backed / pledged`: 1 when the parent
    ///         completed). The payout follows the usual rules (pushed, or credited to the ledger;
    ///         for a nested pledge, a credit in the parent's own pledge token).
    /// @dev Reverts `PledgePending` while the parent is not final, `PledgeVoid` when it ended
    ///      without paying this pledge's provider, `NothingToWithdraw` without credits.
    /// @param pledgeToken A token from `pledgeTokenOf`.
    /// @return paid Amount of the parent's token paid out.
    function redeemPledge(address pledgeToken) external nonReentrant returns (uint256 paid) {
        PledgeSource memory src = pledgeSources[pledgeToken];
        if (src.provider == address(0)) revert NotPledgeToken();
        Status s = Status(uint8(_records[src.parentId]));
        if (s != Status.Completed && s != Status.Resolved) {
            if (s == Status.Expired || s == Status.Refunded) revert PledgeVoid();
            revert PledgePending(s);
        }
        Pledge memory pl = pledges[pledgeToken];
        if (pl.backed == 0) revert PledgeVoid();
        uint256 credit = withdrawable[pledgeToken][msg.sender];
        if (credit == 0) revert NothingToWithdraw();
        withdrawable[pledgeToken][msg.sender] = 0;
        paid = credit * pl.backed / pl.pledged;
        emit PledgeRedeemed(pledgeToken, msg.sender, credit, paid);
        _pay(src.token, msg.sender, paid);
    }

    /// @notice The token of sub-bounties funded from `provider`'s reward on `parentId`: an
    ///         address with no code, derived from this escrow, the parent and the provider.
    function pledgeTokenOf(uint256 parentId, address provider) public view returns (address) {
        return address(uint160(uint256(keccak256(abi.encode(PLEDGE_TAG, address(this), parentId, provider)))));
    }

    // ------------------------------------------------------------------------------------------
    // Disputes
    // ------------------------------------------------------------------------------------------

    /// @notice Escalates to the arbiter, posting `disputeBond` wei. Allowed for the poster or the
    ///         provider while a submission awaits its verdict (within the review window), or for
    ///         the provider after a rejection (within the challenge window).
    /// @dev Requires `b.arbiter != 0` and msg.value == disputeBond. → `Disputed`.
    /// @param id Bounty id.
    /// @param b Current record.
    function dispute(uint256 id, Bounty calldata b) external payable {
        uint256 word = _load(id, b);
        if (b.arbiter == address(0)) revert NoArbiter();
        if (msg.value != disputeBond) revert InvalidValue();
        Status s = Status(uint8(word));
        if (s == Status.Submitted) {
            if (msg.sender != b.poster && msg.sender != b.provider) revert NotParty();
            if (block.timestamp > _stampOf(word) + b.reviewWindow) revert TooLate();
        } else if (s == Status.Rejected) {
            if (msg.sender != b.provider) revert NotProvider();
            if (block.timestamp > _stampOf(word) + b.challengeWindow) revert TooLate();
        } else {
            revert InvalidStatus(s);
        }
        disputeOpener[id] = msg.sender;
        _records[id] = _restamp(word, Status.Disputed);
        emit DisputeOpened(id, msg.sender, msg.value);
    }

    /// @notice The arbiter rules a split: the provider gets `price * providerBps / 10000` gross
    ///         (fee taken on that portion), the poster the rest of `amount`. `providerBps >= 5000`
    ///         means the provider won. A losing escalator's bond goes to the other party, a winning
    ///         escalator gets it back. A losing provider is slashed `bond * slashBps / 10000` of
    ///         the stake it bonded with its bid (`bondOf`, stake units; nothing without a bond),
    ///         to the poster, through the stake registry. The registry cannot block the ruling:
    ///         if `slash` reverts, `SlashFailed` is emitted and the ruling settles with `slashed` = 0.
    /// @dev Only `b.arbiter`, status `Disputed` → `Resolved`. All state is written before the
    ///      external calls (payouts, then `slash`); guarded by `nonReentrant`.
    /// @param id Bounty id.
    /// @param b Current record.
    /// @param providerBps Provider's share of the price in basis points (<= 10000).
    function resolve(uint256 id, Bounty calldata b, uint16 providerBps) external nonReentrant {
        uint256 word = _load(id, b);
        if (msg.sender != b.arbiter) revert NotArbiter();
        _expect(word, Status.Disputed);
        if (providerBps > BPS) revert InvalidBps();
        _records[id] = _restamp(word, Status.Resolved);

        bool providerWon = providerBps >= BPS / 2;
        address opener = disputeOpener[id];
        delete disputeOpener[id];
        // The provider's signed bond (stake units) is spent by the ruling whatever it is; a losing
        // provider is slashed `bond * slashBps / BPS` of it. A bond was only accepted with a
        // registry (`_checkStake`), so the registry is set whenever this is non-zero.
        uint256 slashAmount = _takeBond(id) * (providerWon ? 0 : slashBps) / BPS;

        uint256 gross = uint256(b.price) * providerBps / BPS;
        uint256 fee = gross * b.feeBps / BPS;
        uint256 toPoster = b.amount - gross;
        _accrueFee(b.token, fee);
        uint256 held = word & PLEDGED == 0 ? 0 : _holdPledge(id, b.provider, gross - fee);
        _pay(b.token, b.provider, gross - fee - held);
        _pay(b.token, b.poster, toPoster);

        if (disputeBond != 0) {
            bool openerWon = (opener == b.provider) == providerWon;
            address bondTo = openerWon ? opener : (opener == b.provider ? b.poster : b.provider);
            _pay(address(0), bondTo, disputeBond);
        }

        uint256 slashed;
        if (slashAmount != 0) {
            try stakeRegistry.slash(b.provider, slashAmount, b.poster) returns (uint256 s) {
                slashed = s;
            } catch {
                emit SlashFailed(id, b.provider, slashAmount);
            }
        }
        emit DisputeResolved(id, providerBps, gross - fee, toPoster, fee, slashed);
    }

    // ------------------------------------------------------------------------------------------
    // Contests
    // ------------------------------------------------------------------------------------------

    /// @notice Submits an entry to a funded contest (one per address). Subject to the stake gate:
    ///         with `minBond` set, the entrant must hold that much stake (entries are never
    ///         slashed; the floor prices junk entries, whatever the contest's token).
    /// @dev Contest mode, status `Funded`, not after the deadline, `resultHash != 0`.
    /// @param id Bounty id.
    /// @param b Current record.
    /// @param resultHash Hash of the entry.
    function submitEntry(uint256 id, Bounty calldata b, bytes32 resultHash) external {
        uint256 word = _load(id, b);
        if (b.mode != Mode.Contest) revert WrongMode();
        _expect(word, Status.Funded);
        if (block.timestamp > b.deadline) revert TooLate();
        if (resultHash == bytes32(0)) revert ZeroResult();
        if (entries[id][msg.sender] != bytes32(0)) revert AlreadyEntered();
        uint80 floor = _config.minBond;
        _checkStake(msg.sender, floor, floor);
        entries[id][msg.sender] = resultHash;
        ++entryCount[id];
        emit EntrySubmitted(id, msg.sender, resultHash);
    }

    /// @notice The evaluator picks the contest winners and their shares; everyone is paid at once
    ///         (`amount * share / 10000` minus fee; the last winner receives the rounding dust).
    /// @dev Only `b.evaluator`, contest mode, status `Funded`, `deadline < now <= deadline + reviewWindow`.
    ///      Winners must have entries, be distinct, number 1..maxWinners; shares non-zero, sum 10000.
    /// @param id Bounty id.
    /// @param b Current record.
    /// @param winners Winning entrants.
    /// @param sharesBps Share of each winner in basis points.
    function pickWinners(
        uint256 id,
        Bounty calldata b,
        address[] calldata winners,
        uint16[] calldata sharesBps
    ) external nonReentrant {
        uint256 word = _load(id, b);
        if (msg.sender != b.evaluator) revert NotEvaluator();
        if (b.mode != Mode.Contest) revert WrongMode();
        _expect(word, Status.Funded);
        if (block.timestamp <= b.deadline) revert TooEarly();
        if (block.timestamp > uint256(b.deadline) + b.reviewWindow) revert TooLate();
        uint256 n = winners.length;
        if (n == 0 || n > b.maxWinners || n != sharesBps.length) revert InvalidWinners();
        uint256 total;
        for (uint256 i; i < n; ++i) {
            address w = winners[i];
            if (entries[id][w] == bytes32(0)) revert NoEntry(w);
            for (uint256 j; j < i; ++j) {
                if (winners[j] == w) revert DuplicateWinner(w);
            }
            if (sharesBps[i] == 0) revert InvalidShares();
            total += sharesBps[i];
        }
        if (total != BPS) revert InvalidShares();

        _records[id] = _restamp(word, Status.Completed);
        _payWinners(id, b, winners, sharesBps);
    }

    /// @dev Pays contest winners; the last one receives the rounding dust.
    function _payWinners(
        uint256 id,
        Bounty calldata b,
        address[] calldata winners,
        uint16[] calldata sharesBps
    ) internal {
        address token = b.token;
        uint256 amount = b.amount;
        uint256 left = amount;
        uint256 feeTotal;
        uint256 last = winners.length - 1;
        for (uint256 i; i <= last; ++i) {
            uint256 gross = i == last ? left : amount * sharesBps[i] / BPS;
            left -= gross;
            uint256 fee = gross * b.feeBps / BPS;
            feeTotal += fee;
            emit WinnerPaid(id, winners[i], gross - fee, fee);
            _pay(token, winners[i], gross - fee);
        }
        _accrueFee(token, feeTotal);
        emit BountyCompleted(id, address(0), amount - feeTotal, feeTotal, 0);
    }

    // ------------------------------------------------------------------------------------------
    // Ledger and nonces
    // ------------------------------------------------------------------------------------------

    /// @notice Pays the platform fees accrued in `token` to the current fee recipient, like every
    ///         payout: pushed, or credited to its ledger entry (`withdraw`) if the push fails. A
    ///         pledge token cannot be pushed, so its fees are always credited (`redeemPledge`).
    ///         Anyone may call: the fees only ever go to the recipient the owner set.
    /// @dev Reverts `NothingToWithdraw` when nothing has accrued. The pool is cleared before the
    ///      push (and `nonReentrant`).
    /// @param token Token whose fees to collect (address(0) = ETH).
    /// @return amount The amount paid.
    function collectFees(address token) external nonReentrant returns (uint256 amount) {
        amount = accruedFees[token];
        if (amount == 0) revert NothingToWithdraw();
        accruedFees[token] = 0;
        address to = _config.feeRecipient;
        emit FeesCollected(token, to, amount);
        _pay(token, to, amount);
    }

    /// @notice Marks the nonces set in `mask` at word `wordPos` as used, cancelling those bids.
    /// @param wordPos Nonce word position (`nonce >> 8`).
    /// @param mask Bits to set (bit `nonce & 0xff`).
    function invalidateNonces(uint256 wordPos, uint256 mask) external {
        nonceBitmap[msg.sender][wordPos] |= mask;
        emit NonceInvalidated(msg.sender, wordPos, mask);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice Id of the bounty `poster` creates with `salt`.
    function bountyIdOf(address poster, bytes32 salt) public pure returns (uint256) {
        return uint256(keccak256(abi.encode(poster, salt)));
    }

    /// @notice Status and timestamp of the last transition of a bounty.
    function statusOf(uint256 id) external view returns (Status status, uint40 stamp) {
        uint256 word = _records[id];
        return (Status(uint8(word)), _stampOf(word));
    }

    /// @notice Raw stored word of a bounty (commitment | pledge flag << 48 | stamp << 8 | status).
    function recordOf(uint256 id) external view returns (uint256) {
        return _records[id];
    }

    /// @inheritdoc IBountyLedger
    function verifyRecord(uint256 bountyId, Bounty calldata b) external view returns (Status) {
        return Status(uint8(_load(bountyId, b)));
    }

    /// @notice Commitment hash of a record: keccak256(abi.encode(b)) (the stored word keeps its
    ///         upper 207 bits).
    function hashBounty(Bounty calldata b) external pure returns (bytes32) {
        return _hash(b);
    }

    /// @notice EIP-712 digest a bidder signs for `bid`. Sign it with `bid.termsHash` set to
    ///         `hashBounty` of the record as posted.
    function hashBid(Bid calldata bid) external view returns (bytes32) {
        return _bidDigest(bid, bid.bountyId, bid.termsHash);
    }

    /// @dev EIP-712 digest of `bid` with its `bountyId` and `termsHash` set to `id` and `terms`.
    function _bidDigest(Bid calldata bid, uint256 id, bytes32 terms) internal view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    BID_TYPEHASH,
                    id,
                    terms,
                    bid.bidder,
                    bid.amount,
                    bid.deadline,
                    bid.eta,
                    bid.bond,
                    bid.nonce
                )
            )
        );
    }

    /// @notice EIP-712 digest an evaluator signs for `att`.
    function hashAttestation(Attestation calldata att) external view returns (bytes32) {
        return _attestationDigest(att.bountyId, att.provider, att.resultHash, att.verdict);
    }

    /// @notice EIP-712 domain separator (name "ReefBountyEscrow", version "1").
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice Whether `nonce` of `bidder` is used (or invalidated).
    function isNonceUsed(address bidder, uint256 nonce) external view returns (bool) {
        return nonceBitmap[bidder][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @notice Current platform fee in basis points (snapshotted into new bounties).
    function feeBps() external view returns (uint16) {
        return _config.feeBps;
    }

    /// @notice Account `collectFees` pays the accrued platform fees to.
    function feeRecipient() external view returns (address) {
        return _config.feeRecipient;
    }

    /// @notice Stake-registry wei every award must bond and every contest entrant must hold
    ///         (0 = no gate).
    function minBond() external view returns (uint256) {
        return _config.minBond;
    }

    // ------------------------------------------------------------------------------------------
    // Internal: records
    // ------------------------------------------------------------------------------------------

    /// @dev keccak256(abi.encode(b)). `Bounty` is a static 15-word tuple, so its ABI encoding is
    ///      exactly its 480 calldata bytes: copy them to scratch memory past the free pointer
    ///      (not allocated) and hash. Calldata with dirty high bits hashes differently from the
    ///      clean encoding and therefore fails `_load`; `_checkNew` rejects it at creation.
    function _hash(Bounty calldata b) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, b, BOUNTY_SIZE)
            h := keccak256(ptr, BOUNTY_SIZE)
        }
    }

    /// @dev Commitments of `b` as given (`posted`, = `_hash(b)`) and with `price` and `provider`
    ///      set (`awarded`): one calldata copy, two hashes (award / postFundAndAward).
    function _hashTermsAndAwarded(Bounty calldata b, uint256 price, address provider)
        internal
        pure
        returns (bytes32 posted, bytes32 awarded)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, b, BOUNTY_SIZE)
            posted := keccak256(ptr, BOUNTY_SIZE)
            mstore(add(ptr, PRICE_OFFSET), price)
            mstore(add(ptr, PROVIDER_OFFSET), provider)
            awarded := keccak256(ptr, BOUNTY_SIZE)
        }
    }

    /// @dev Commitments of `b` with `price`/`provider` cleared (`posted`, what bids are signed
    ///      for) and set to a new award (`awarded`): the take-over path.
    function _hashPostedAndAwarded(Bounty calldata b, uint256 price, address provider)
        internal
        pure
        returns (bytes32 posted, bytes32 awarded)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, b, BOUNTY_SIZE)
            mstore(add(ptr, PRICE_OFFSET), 0)
            mstore(add(ptr, PROVIDER_OFFSET), 0)
            posted := keccak256(ptr, BOUNTY_SIZE)
            mstore(add(ptr, PRICE_OFFSET), price)
            mstore(add(ptr, PROVIDER_OFFSET), provider)
            awarded := keccak256(ptr, BOUNTY_SIZE)
        }
    }

    /// @dev Commitment of `b` with `resultHash` set (submission).
    function _hashSubmitted(Bounty calldata b, bytes32 resultHash) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, b, BOUNTY_SIZE)
            mstore(add(ptr, RESULT_OFFSET), resultHash)
            h := keccak256(ptr, BOUNTY_SIZE)
        }
    }

    /// @dev `emit BountyPosted(id, msg.sender, token, t, funded)` with the record copied straight
    ///      from calldata (its ABI encoding is its 480 calldata bytes) instead of re-encoded field
    ///      by field. The encoder rejected dirty high bits; `_checkNew` reads (and so validates)
    ///      every field but these three, checked here: a record is logged and committed clean.
    function _emitPosted(uint256 id, Bounty calldata t, address token, bool funded) internal {
        bytes32 topic = BountyPosted.selector;
        assembly ("memory-safe") {
            let dirty := shr(160, calldataload(add(t, ARBITER_OFFSET)))
            dirty := or(dirty, shr(32, calldataload(add(t, REVIEW_OFFSET))))
            dirty := or(dirty, shr(32, calldataload(add(t, CHALLENGE_OFFSET))))
            if dirty { revert(0, 0) }
            let ptr := mload(0x40)
            calldatacopy(ptr, t, BOUNTY_SIZE)
            mstore(add(ptr, BOUNTY_SIZE), iszero(iszero(funded)))
            // `token` may carry dirty high bits on the stack (`pledgeTokenOf` truncates a hash).
            log4(ptr, add(BOUNTY_SIZE, 0x20), topic, id, caller(), shr(96, shl(96, token)))
        }
    }

    /// @dev Loads the word of `id` and checks that `b` is its record.
    function _load(uint256 id, Bounty calldata b) internal view returns (uint256 word) {
        word = _records[id];
        if ((word ^ uint256(_hash(b))) >> COMMIT_SHIFT != 0) revert BountyMismatch();
    }

    /// @dev New word from a commitment (low 48 bits ignored), the current time and a status.
    function _word(bytes32 commitment, Status s) internal view returns (uint256) {
        return (uint256(commitment) & ~LOW_MASK) | (uint256(uint40(block.timestamp)) << 8) | uint256(s);
    }

    /// @dev New word with an explicit stamp (the delivery due time of an `Awarded` record).
    function _wordAt(bytes32 commitment, Status s, uint64 stamp) internal pure returns (uint256) {
        return (uint256(commitment) & ~LOW_MASK) | (uint256(uint40(stamp)) << 8) | uint256(s);
    }

    /// @dev Delivery due time of an award now: `now + eta`, capped at the deadline (eta 0 = deadline).
    ///      The record word keeps it in 40 bits, so a deadline past `type(uint40).max` saturates
    ///      there instead of wrapping to an early due time (which would open the take-over at
    ///      once). `now + eta` itself fits in 40 bits until the year 36812.
    function _dueBy(uint64 deadline, uint32 eta) internal view returns (uint64) {
        if (eta == 0) return deadline < MAX_STAMP ? deadline : MAX_STAMP;
        uint256 due = block.timestamp + eta;
        return due < deadline ? uint64(due) : deadline;
    }

    /// @dev Checks of `reassign` / `revokeAward`; returns the missed due time.
    function _checkOverdue(uint256 word, Bounty calldata b) internal view returns (uint64 due) {
        if (msg.sender != b.poster && msg.sender != b.evaluator) revert NotPosterOrEvaluator();
        _expect(word, Status.Awarded);
        due = _stampOf(word);
        if (block.timestamp <= due) revert TooEarly();
        if (block.timestamp > b.deadline) revert TooLate();
    }

    /// @dev Same commitment and pledge flag, new status and stamp.
    function _restamp(uint256 word, Status s) internal view returns (uint256) {
        return (word & ~META_MASK) | (uint256(uint40(block.timestamp)) << 8) | uint256(s);
    }

    function _stampOf(uint256 word) internal pure returns (uint40) {
        return uint40(word >> 8);
    }

    function _expect(uint256 word, Status s) internal pure {
        Status current = Status(uint8(word));
        if (current != s) revert InvalidStatus(current);
    }

    /// @dev Validates fresh terms posted by msg.sender and returns the (unused) id.
    function _checkNew(bytes32 salt, Bounty calldata t, uint16 currentFee)
        internal
        view
        returns (uint256 id)
    {
        id = bountyIdOf(msg.sender, salt);
        if (_records[id] != 0) revert BountyExists();
        if (t.poster != msg.sender) revert NotPoster();
        if (t.amount == 0) revert ZeroAmount();
        if (t.deadline <= block.timestamp) revert InvalidDeadline();
        if (t.evaluator == address(0)) revert ZeroAddress();
        if (t.price != 0 || t.provider != address(0) || t.resultHash != bytes32(0)) revert InvalidTerms();
        if (t.feeBps != currentFee) revert FeeMismatch();
        if (t.mode == Mode.Auction) {
            if (t.maxWinners != 0) revert InvalidTerms();
        } else if (t.maxWinners == 0 || t.maxWinners > MAX_CONTEST_WINNERS || t.reviewWindow == 0) {
            revert InvalidTerms();
        }
    }

    // ------------------------------------------------------------------------------------------
    // Internal: checks
    // ------------------------------------------------------------------------------------------

    /// @dev Bid checks shared by `award`, `postFundAndAward` and `reassign` (consumes the nonce).
    ///      `posted` is the commitment of the `Funded` record (`_hash(b)`), which the bid must be
    ///      signed for. The signature is checked over `id` and `posted`, so a caller may leave
    ///      `bid.bountyId` and `bid.termsHash` zero (64 bytes less calldata); non-zero, they must
    ///      match (`BidMismatch`).
    function _checkBid(
        uint256 id,
        bytes32 posted,
        uint256 budget,
        Bid calldata bid,
        bytes calldata sig,
        uint80 floor
    ) internal {
        if (!_matches(bid.bountyId, id) || !_matches(uint256(bid.termsHash), uint256(posted))) {
            revert BidMismatch();
        }
        if (bid.deadline < block.timestamp) revert BidExpired();
        if (bid.amount == 0) revert ZeroAmount();
        if (bid.amount > budget) revert BidTooHigh();
        address bidder = bid.bidder;
        _useNonce(bidder, bid.nonce);
        if (!_isValidSig(bidder, _bidDigest(bid, id, posted), sig)) revert InvalidSignature();
        _checkStake(bidder, bid.bond, floor);
    }

    /// @dev A bid field the escrow can derive: left zero, or equal to the derived value.
    function _matches(uint256 given, uint256 derived) internal pure returns (bool) {
        return given == 0 || given == derived;
    }

    /// @dev Stake gate, in stake units: `bond >= minBond`, and a non-zero bond must be covered by
    ///      `account`'s stake (no registry: no stake). Only calls the registry for a bond.
    function _checkStake(address account, uint256 bond, uint80 floor) internal view {
        if (bond < floor) revert BondTooLow();
        if (bond != 0) {
            if (address(stakeRegistry) == address(0) || stakeRegistry.stakeOf(account) < bond) {
                revert InsufficientStake();
            }
        }
    }

    function _useNonce(address bidder, uint256 nonce) internal {
        uint256 bit = 1 << (nonce & 0xff);
        uint256 flipped = nonceBitmap[bidder][nonce >> 8] ^= bit;
        if (flipped & bit == 0) revert NonceUsed();
    }

    /// @dev Checks shared by `submit` and `submitAndAttest`.
    function _checkSubmission(uint256 word, Bounty calldata b, bytes32 resultHash) internal view {
        if (msg.sender != b.provider) revert NotProvider();
        _expect(word, Status.Awarded);
        if (block.timestamp > b.deadline) revert TooLate();
        if (resultHash == bytes32(0)) revert ZeroResult();
    }

    function _checkAttestation(
        uint256 id,
        Bounty calldata b,
        bytes32 resultHash,
        uint8 verdict,
        bytes calldata sig
    ) internal view {
        if (verdict != VERDICT_ACCEPT && verdict != VERDICT_REJECT) revert InvalidVerdict();
        address evaluator = b.evaluator;
        if (
            msg.sender != evaluator
                && !_isValidSig(evaluator, _attestationDigest(id, b.provider, resultHash, verdict), sig)
        ) {
            revert InvalidSignature();
        }
    }

    function _attestationDigest(uint256 id, address provider, bytes32 resultHash, uint8 verdict)
        internal
        view
        returns (bytes32)
    {
        return
            _hashTypedDataV4(keccak256(abi.encode(ATTESTATION_TYPEHASH, id, provider, resultHash, verdict)));
    }

    /// @dev ECDSA first (no EXTCODESIZE on the common EOA path), then ERC-1271. An ECDSA signature
    ///      by the key of `signer` is accepted even if `signer` has code (EIP-7702 accounts).
    function _isValidSig(address signer, bytes32 digest, bytes calldata sig) internal view returns (bool) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, sig);
        if (err == ECDSA.RecoverError.NoError && recovered == signer) return true;
        return SignatureChecker.isValidERC1271SignatureNowCalldata(signer, digest, sig);
    }

    // ------------------------------------------------------------------------------------------
    // Internal: settlement
    // ------------------------------------------------------------------------------------------

    /// @dev Writes the verdict outcome for a submitted result whose commitment is `commitment`;
    ///      `pledged` is the record's `PLEDGED` bit, kept in the new word.
    function _applyVerdict(uint256 id, Bounty calldata b, bytes32 commitment, uint256 pledged, uint8 verdict)
        internal
    {
        if (verdict == VERDICT_ACCEPT) {
            _records[id] = _word(commitment, Status.Completed) | pledged;
            _settle(id, b, pledged);
        } else if (b.arbiter == address(0) || b.challengeWindow == 0) {
            _records[id] = _word(commitment, Status.Refunded) | pledged;
            emit BountyRejected(id, b.provider, 0);
            _refund(id, b, Status.Refunded);
        } else {
            _records[id] = _word(commitment, Status.Rejected) | pledged;
            emit BountyRejected(id, b.provider, block.timestamp + b.challengeWindow);
        }
    }

    /// @dev Pays the provider `price - fee` (less what it pledged to sub-bounties, when `pledged`
    ///      is set), accrues the fee and refunds `amount - price`.
    function _settle(uint256 id, Bounty calldata b, uint256 pledged) internal {
        address token = b.token;
        uint256 price = b.price;
        uint256 fee = price * b.feeBps / BPS;
        uint256 refunded = b.amount - price;
        emit BountyCompleted(id, b.provider, price - fee, fee, refunded);
        _accrueFee(token, fee);
        uint256 held = pledged == 0 ? 0 : _holdPledge(id, b.provider, price - fee);
        _pay(token, b.provider, price - fee - held);
        _pay(token, b.poster, refunded);
    }

    /// @dev Holds back, out of `net` (the provider's pay), what the provider pledged to its
    ///      sub-bounties on `id`, and records it as their backing. Returns the amount held.
    function _holdPledge(uint256 id, address provider, uint256 net) internal returns (uint256 held) {
        address pt = pledgeTokenOf(id, provider);
        Pledge storage pl = pledges[pt];
        held = pl.pledged;
        if (held == 0) return 0;
        if (held > net) held = net;
        pl.backed = uint128(held);
        emit PledgeBacked(pt, id, held);
    }

    /// @dev Reads and clears the bond of `id`'s provider.
    function _takeBond(uint256 id) internal returns (uint256 bond) {
        bond = bondOf[id];
        if (bond != 0) delete bondOf[id];
    }

    function _refund(uint256 id, Bounty calldata b, Status reason) internal {
        emit BountyRefunded(id, b.poster, b.amount, reason);
        _pay(b.token, b.poster, b.amount);
    }

    function _accrueFee(address token, uint256 fee) internal {
        if (fee != 0) accruedFees[token] += fee;
    }
}
