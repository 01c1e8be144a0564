// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Reef bounty types shared by the escrow, the registries and off-chain clients.
/// @notice The escrow stores ONE storage word per bounty: a commitment to the full `Bounty`
///         record below plus its status and a timestamp. Every call that acts on a bounty passes
///         the current `Bounty` in calldata; the escrow re-hashes it and compares. Events carry the
///         full record, so clients and indexers rebuild it from logs.
interface IBountyTypes {
    /// @notice Lifecycle of a bounty.
    enum Status {
        None, // never created
        Open, // posted, not yet funded
        Funded, // funds escrowed, bidding (no provider yet)
        Awarded, // a signed bid was accepted; provider set (stamp = delivery due time)
        Submitted, // provider submitted a result hash
        Completed, // terminal: provider paid
        Rejected, // evaluator rejected; refund pending challenge window (or refunded at once)
        Expired, // terminal: refunded after deadline / silent evaluator
        Disputed, // escalated to the arbiter
        Resolved, // terminal: arbiter ruled a split
        Cancelled, // terminal: poster withdrew before award
        Refunded // terminal: rejection final, poster refunded
    }

    /// @notice How providers are chosen.
    enum Mode {
        Auction, // one provider, chosen by a signed bid
        Contest // anyone submits entries; the evaluator picks winners and splits
    }

    /// @notice The full record of a bounty. Fields filled later start at zero.
    struct Bounty {
        address poster; // who pays and is refunded
        address token; // ERC-20 reward token, address(0) = native ETH
        uint128 amount; // escrowed budget
        uint128 price; // agreed price from the winning bid (0 until awarded, <= amount)
        address provider; // winning bidder (0 until awarded)
        address evaluator; // attests verdicts: the poster, a verifier key, or a contract (ERC-1271)
        address arbiter; // rules disputes; address(0) = no disputes
        uint64 deadline; // submission deadline (unix seconds)
        uint32 reviewWindow; // seconds after submission for a verdict (auto-accept if evaluator == poster)
        uint32 challengeWindow; // seconds after a rejection in which the provider may dispute
        uint16 feeBps; // platform fee snapshot, taken only on completion
        Mode mode; // auction or contest
        uint8 maxWinners; // contest only
        bytes32 specHash; // keccak256 of the task description / spec
        bytes32 resultHash; // provider's result (0 until submitted)
    }

    /// @notice A provider's EIP-712 signed bid: binding price for one bounty, single use.
    /// @dev `termsHash` commits the bidder to the bounty's terms: it must equal the commitment
    ///      `keccak256(abi.encode(bounty))` of the record as posted (provider, price and resultHash
    ///      zero), i.e. `BountyEscrow.hashBounty` of the `Funded` record. `bond` is the stake the
    ///      bidder puts at risk, in the stake registry's unit (wei of native ETH), independent of
    ///      the reward token: its stake must cover it at the award, and a lost dispute slashes
    ///      `bond * slashBps / 10000` of it, never more.
    struct Bid {
        uint256 bountyId;
        bytes32 termsHash; // commitment of the bounty record as posted (see hashBounty)
        address bidder;
        uint256 amount;
        uint64 deadline; // bid validity
        uint32 eta; // promised delivery, seconds after the award (0 = by the bounty deadline)
        uint256 bond; // stake put at risk, in stake-registry wei (0 = none; never slashed)
        uint256 nonce; // unordered nonce (bitmap), single use per bidder
    }

    /// @notice An evaluator's EIP-712 verdict on a submitted result. It names the provider whose
    ///         result it judges, so after a take-over the replacement cannot replay it.
    struct Attestation {
        uint256 bountyId;
        address provider; // the awarded provider whose result is judged
        bytes32 resultHash;
        uint8 verdict; // 1 = accept, 2 = reject
    }
}
