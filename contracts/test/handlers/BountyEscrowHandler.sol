// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {BountyEscrow} from "../../src/BountyEscrow.sol";
import {IBountyTypes} from "../../src/interfaces/IBountyTypes.sol";
import {IStakeRegistry} from "../../src/interfaces/IStakeRegistry.sol";
import {EscrowActor, EscrowMockStakeRegistry, EscrowMockToken} from "../mocks/BountyEscrowMocks.sol";

/// @notice Drives random lifecycles over ETH and one ERC-20 with a fixed actor set, and keeps ghost
///         accounting of what each bounty has released.
contract BountyEscrowHandler is Test {
    uint256 internal constant N_ACTORS = 4;
    uint256 public constant BOND = 0.01 ether;

    BountyEscrow public escrow;
    EscrowMockToken public token;
    EscrowMockStakeRegistry public registry;

    address public feeTo = makeAddr("inv.feeTo");
    address public arbiter = makeAddr("inv.arbiter");
    address public evaluator;
    uint256 internal evaluatorKey;

    address[] public actors;
    uint256[] internal actorKeys;

    // ---- bounty book
    uint256[] public ids;
    IBountyTypes.Bounty[] internal records;
    mapping(uint256 index => bool) public funded;
    mapping(uint256 index => uint256) public paid; // value released by the escrow for this bounty
    mapping(uint256 index => IBountyTypes.Status) public lastStatus;
    mapping(uint256 index => address[]) internal entrants;

    // ---- pledges (sub-bounties funded from a pending reward)
    address[] public pledgeTokens;
    mapping(address pledgeToken => bool) internal knownPledge;
    mapping(address pledgeToken => uint256) public redeemedCredit; // credits turned in
    mapping(address pledgeToken => uint256) public redeemedPaid; // value paid for them

    // ---- bonds (stake at risk, signed in the bid; stake units, not the reward token)
    mapping(uint256 index => uint256) public bondOf; // bond of the current provider
    uint256 public ghost_bondsSlashable; // sum over resolved losing disputes of bond * slashBps
    uint256 public ghost_slashed; // what the registry actually slashed
    bool public slashOverBond; // set if a ruling slashed more than bond * slashBps / 1e4

    // ---- ghosts
    bool public terminalLeft; // set if a terminal bounty ever changed status
    uint256 public nonceCounter;
    uint256 public saltCounter;
    uint256 public currentTime;
    mapping(bytes32 => uint256) public calls; // handler invocations
    mapping(bytes32 => uint256) public hits; // successful escrow calls

    constructor() {
        currentTime = 1_700_000_000;
        vm.warp(currentTime);
        (evaluator, evaluatorKey) = makeAddrAndKey("inv.evaluator");
        token = new EscrowMockToken();
        registry = new EscrowMockStakeRegistry();
        escrow = new BountyEscrow(address(this), feeTo, 250, IStakeRegistry(address(registry)), BOND, 5_000);

        EscrowActor code = new EscrowActor();
        for (uint256 i; i < N_ACTORS; ++i) {
            (address a, uint256 k) = makeAddrAndKey(string(abi.encodePacked("inv.actor", vm.toString(i))));
            actors.push(a);
            actorKeys.push(k);
            // Actor 0 is a contract account (same key) that can be told to refuse ETH.
            if (i == 0) vm.etch(a, address(code).code);
            vm.deal(a, 1_000_000 ether);
            token.mint(a, 1e36);
            vm.prank(a);
            token.approve(address(escrow), type(uint256).max);
            registry.setStake(a, 100 ether);
        }
    }

    // =====================================================================================
    // views for the invariant contract
    // =====================================================================================

    function bountyCount() external view returns (uint256) {
        return ids.length;
    }

    function record(uint256 i) external view returns (IBountyTypes.Bounty memory) {
        return records[i];
    }

    function actorCount() external pure returns (uint256) {
        return N_ACTORS;
    }

    function isTerminal(IBountyTypes.Status s) public pure returns (bool) {
        return s == IBountyTypes.Status.Completed || s == IBountyTypes.Status.Expired
            || s == IBountyTypes.Status.Resolved || s == IBountyTypes.Status.Cancelled
            || s == IBountyTypes.Status.Refunded;
    }

    function holdsFunds(IBountyTypes.Status s) public pure returns (bool) {
        return s == IBountyTypes.Status.Funded || s == IBountyTypes.Status.Awarded
            || s == IBountyTypes.Status.Submitted || s == IBountyTypes.Status.Rejected
            || s == IBountyTypes.Status.Disputed;
    }

    // =====================================================================================
    // modifiers / helpers
    // =====================================================================================

    modifier step(bytes32 name) {
        vm.warp(currentTime);
        _;
        ++calls[name];
        _syncStatuses();
    }

    function _syncStatuses() internal {
        for (uint256 i; i < ids.length; ++i) {
            (IBountyTypes.Status s,) = escrow.statusOf(ids[i]);
            IBountyTypes.Status prev = lastStatus[i];
            if (isTerminal(prev) && s != prev) terminalLeft = true;
            lastStatus[i] = s;
        }
    }

    function _actor(uint256 seed) internal view returns (address a, uint256 k) {
        uint256 i = seed % N_ACTORS;
        return (actors[i], actorKeys[i]);
    }

    function _pick(uint256 seed) internal view returns (bool ok, uint256 i) {
        if (ids.length == 0) return (false, 0);
        return (true, seed % ids.length);
    }

    /// @dev First bounty (scanning from `seed`) whose status is `want`.
    function _find(uint256 seed, IBountyTypes.Status want) internal view returns (bool, uint256) {
        uint256 n = ids.length;
        for (uint256 k; k < n; ++k) {
            uint256 i = (seed % n + k) % n;
            (IBountyTypes.Status s,) = escrow.statusOf(ids[i]);
            if (s == want) return (true, i);
        }
        return (false, 0);
    }

    function _status(uint256 i) internal view returns (IBountyTypes.Status s, uint40 stamp) {
        return escrow.statusOf(ids[i]);
    }

    /// @dev What the escrow owes in `tkn` outside live bounties: ledger credits, the uncollected
    ///      fee pool, plus the part of settled rewards held back for pledges on `tkn` and not
    ///      redeemed yet.
    function ledgerSum(address tkn) public view returns (uint256 sum) {
        for (uint256 a; a < N_ACTORS; ++a) {
            sum += escrow.withdrawable(tkn, actors[a]);
        }
        sum += escrow.withdrawable(tkn, feeTo);
        sum += escrow.accruedFees(tkn);
        sum += heldSum(tkn);
    }

    /// @dev Backing held for the pledges whose parent pays in `tkn`, less what was redeemed.
    function heldSum(address tkn) public view returns (uint256 sum) {
        for (uint256 k; k < pledgeTokens.length; ++k) {
            address pt = pledgeTokens[k];
            (, address src,) = escrow.pledgeSources(pt);
            if (src != tkn) continue;
            (, uint128 backed) = escrow.pledges(pt);
            sum += backed - redeemedPaid[pt];
        }
    }

    function pledgeTokenCount() external view returns (uint256) {
        return pledgeTokens.length;
    }

    /// @dev A pledge token has no code and holds nothing: its value lives in the ledger.
    function _escrowBal(address tkn) internal view returns (uint256) {
        if (tkn == address(0)) return address(escrow).balance;
        return tkn == address(token) ? token.balanceOf(address(escrow)) : 0;
    }

    /// @dev Value the escrow released (pushed out or credited to the ledger) during an action.
    function _released(address tkn, uint256 balBefore, uint256 ledgerBefore) internal view returns (uint256) {
        return (balBefore - _escrowBal(tkn)) + (ledgerSum(tkn) - ledgerBefore);
    }

    /// @dev Fresh terms posted now by `poster` (due in two days).
    function _newTerms(
        address poster,
        address tkn,
        uint256 amount,
        bool contest,
        bool withArbiter,
        bool posterEvaluates
    ) internal view returns (IBountyTypes.Bounty memory b) {
        b.poster = poster;
        b.token = tkn;
        b.amount = uint128(amount);
        b.evaluator = posterEvaluates ? poster : evaluator;
        b.arbiter = withArbiter ? arbiter : address(0);
        b.deadline = uint64(currentTime + 2 days);
        b.reviewWindow = 1 days;
        b.challengeWindow = withArbiter ? 1 days : 0;
        b.feeBps = escrow.feeBps();
        if (contest) {
            b.mode = IBountyTypes.Mode.Contest;
            b.maxWinners = 3;
        }
        b.specHash = keccak256(abi.encode(saltCounter));
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    // =====================================================================================
    // actions
    // =====================================================================================

    function warp(uint256 secs) external step("warp") {
        currentTime += bound(secs, 1, 18 hours);
        vm.warp(currentTime);
    }

    function toggleRefuseEth(bool refuse) external step("toggleRefuseEth") {
        EscrowActor(payable(actors[0]))
            .setMode(refuse ? EscrowActor.ReceiveMode.Revert : EscrowActor.ReceiveMode.Accept);
    }

    function postAndFund(
        uint256 posterSeed,
        uint256 amount,
        bool eth,
        bool contest,
        bool withArbiter,
        bool posterEvaluates,
        bool fundNow
    ) external step("postAndFund") {
        (address poster,) = _actor(posterSeed);
        IBountyTypes.Bounty memory b = _newTerms(
            poster,
            eth ? address(0) : address(token),
            bound(amount, 1, 100 ether),
            contest,
            withArbiter,
            posterEvaluates
        );
        bytes32 salt = bytes32(++saltCounter);
        uint256 id;
        vm.prank(poster);
        if (fundNow) {
            id = escrow.postAndFund{value: eth ? b.amount : 0}(salt, b);
            ++hits["postAndFund"];
        } else {
            id = escrow.post(salt, b);
            ++hits["postAndFund"];
        }
        ids.push(id);
        records.push(b);
        funded[ids.length - 1] = fundNow;
    }

    function fund(uint256 seed, uint256 funderSeed) external step("fund") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Open);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (s != IBountyTypes.Status.Open || currentTime > b.deadline) return;
        (address funder,) = _actor(funderSeed);
        vm.prank(funder);
        escrow.fund{value: b.token == address(0) ? b.amount : 0}(ids[i], b);
        ++hits["fund"];
        funded[i] = true;
    }

    function award(uint256 seed, uint256 bidderSeed, uint256 price, uint32 eta, uint256 bond)
        external
        step("award")
    {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Funded);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (
            s != IBountyTypes.Status.Funded || b.mode != IBountyTypes.Mode.Auction || currentTime > b.deadline
        ) {
            return;
        }
        (address bidder, uint256 key) = _actor(bidderSeed);
        IBountyTypes.Bid memory bid = IBountyTypes.Bid({
            bountyId: ids[i],
            termsHash: keccak256(abi.encode(b)),
            bidder: bidder,
            amount: bound(price, 1, b.amount),
            deadline: uint64(currentTime),
            eta: uint32(bound(eta, 0, 12 hours)),
            // Half the awards unbonded, the rest up to the actor's whole stake.
            bond: bond % 2 == 0 || registry.stakeOf(bidder) == 0
                ? 0
                : bound(bond, 1, registry.stakeOf(bidder)),
            nonce: ++nonceCounter
        });
        bytes memory sig = _sign(key, escrow.hashBid(bid));
        vm.prank(b.poster);
        escrow.award(ids[i], b, bid, sig);
        ++hits["award"];
        records[i].provider = bidder;
        records[i].price = uint128(bid.amount);
        bondOf[i] = bid.bond;
    }

    /// @dev Take-over of an overdue award by another actor (poster or evaluator calling; the
    ///      evaluator at most at the current price).
    function reassign(uint256 seed, uint256 bidderSeed, uint256 price, bool byEvaluator)
        external
        step("reassign")
    {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Awarded);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (, uint40 due) = _status(i);
        if (currentTime <= due || currentTime > b.deadline) return;
        (address bidder, uint256 key) = _actor(bidderSeed);
        if (bidder == b.provider || bidder == b.poster) return;
        IBountyTypes.Bounty memory posted = b;
        posted.provider = address(0);
        posted.price = 0;
        IBountyTypes.Bid memory bid = IBountyTypes.Bid({
            bountyId: ids[i],
            termsHash: keccak256(abi.encode(posted)),
            bidder: bidder,
            amount: bound(price, 1, byEvaluator ? records[i].price : records[i].amount),
            deadline: uint64(currentTime),
            eta: 1 hours,
            bond: price % 3 == 0 ? registry.stakeOf(bidder) / 2 : 0,
            nonce: ++nonceCounter
        });
        bytes memory sig = _sign(key, escrow.hashBid(bid));
        // `posted` aliases `b` (memory reference): restore the current record before calling.
        b = records[i];
        vm.prank(byEvaluator ? b.evaluator : b.poster);
        escrow.reassign(ids[i], b, bid, sig);
        ++hits["reassign"];
        records[i].provider = bidder;
        records[i].price = uint128(bid.amount);
        bondOf[i] = bid.bond;
    }

    /// @dev Overdue award ended without replacement: the poster is refunded.
    function revokeAward(uint256 seed) external step("revokeAward") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Awarded);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (, uint40 due) = _status(i);
        if (currentTime <= due || currentTime > b.deadline) return;
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        vm.prank(b.poster);
        escrow.revokeAward(ids[i], b);
        ++hits["revokeAward"];
        paid[i] += _released(b.token, bal, led);
    }

    function submit(uint256 seed) external step("submit") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Awarded);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (s != IBountyTypes.Status.Awarded || currentTime > b.deadline) return;
        bytes32 r = keccak256(abi.encode("result", i));
        vm.prank(b.provider);
        escrow.submit(ids[i], b, r);
        ++hits["submit"];
        records[i].resultHash = r;
    }

    function submitAndAttest(uint256 seed, bool accept) external step("submitAndAttest") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Awarded);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (s != IBountyTypes.Status.Awarded || currentTime > b.deadline || b.evaluator != evaluator) return;
        bytes32 r = keccak256(abi.encode("result", i));
        uint8 verdict = accept ? 1 : 2;
        bytes memory sig = _sign(
            evaluatorKey,
            escrow.hashAttestation(
                IBountyTypes.Attestation({
                    bountyId: ids[i], provider: b.provider, resultHash: r, verdict: verdict
                })
            )
        );
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        vm.prank(b.provider);
        escrow.submitAndAttest(ids[i], b, r, verdict, sig);
        ++hits["submitAndAttest"];
        records[i].resultHash = r;
        paid[i] += _released(b.token, bal, led);
    }

    function attest(uint256 seed, bool accept) external step("attest") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Submitted);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s, uint40 stamp) = _status(i);
        if (s != IBountyTypes.Status.Submitted || currentTime > stamp + b.reviewWindow) return;
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        vm.prank(b.evaluator);
        escrow.attest(ids[i], b, accept ? 1 : 2, "");
        ++hits["attest"];
        paid[i] += _released(b.token, bal, led);
    }

    function claimAfterReview(uint256 seed, uint256 callerSeed) external step("claimAfterReview") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Submitted);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s, uint40 stamp) = _status(i);
        if (s != IBountyTypes.Status.Submitted || currentTime <= stamp + b.reviewWindow) return;
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        (address caller,) = _actor(callerSeed);
        vm.prank(caller);
        escrow.claimAfterReview(ids[i], b);
        ++hits["claimAfterReview"];
        paid[i] += _released(b.token, bal, led);
    }

    function finalizeRejection(uint256 seed) external step("finalizeRejection") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Rejected);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s, uint40 stamp) = _status(i);
        if (s != IBountyTypes.Status.Rejected || currentTime <= stamp + b.challengeWindow) return;
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        escrow.finalizeRejection(ids[i], b);
        ++hits["finalizeRejection"];
        paid[i] += _released(b.token, bal, led);
    }

    function refundExpired(uint256 seed, uint256 callerSeed) external step("refundExpired") {
        (bool ok, uint256 i) = _pick(seed);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (
            s != IBountyTypes.Status.Open && s != IBountyTypes.Status.Funded
                && s != IBountyTypes.Status.Awarded
        ) {
            return;
        }
        uint256 end = b.deadline;
        if (b.mode == IBountyTypes.Mode.Contest) end += b.reviewWindow;
        if (currentTime <= end) return;
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        (address caller,) = _actor(callerSeed);
        vm.prank(caller);
        escrow.refundExpired(ids[i], b);
        ++hits["refundExpired"];
        paid[i] += _released(b.token, bal, led);
    }

    function cancel(uint256 seed) external step("cancel") {
        // Throttled: cancelling is terminal and would otherwise starve the longer lifecycles.
        if (seed % 4 != 0) return;
        (bool ok, uint256 i) = _pick(seed / 4);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (s != IBountyTypes.Status.Open && s != IBountyTypes.Status.Funded) return;
        if (escrow.entryCount(ids[i]) != 0) return;
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        vm.prank(b.poster);
        escrow.cancel(ids[i], b);
        ++hits["cancel"];
        paid[i] += _released(b.token, bal, led);
    }

    function dispute(uint256 seed, bool byPoster) external step("dispute") {
        (bool ok, uint256 i) =
            _find(seed, byPoster ? IBountyTypes.Status.Submitted : IBountyTypes.Status.Rejected);
        if (!ok) (ok, i) = _find(seed, IBountyTypes.Status.Submitted);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        if (b.arbiter == address(0)) return;
        (IBountyTypes.Status s, uint40 stamp) = _status(i);
        address by;
        if (s == IBountyTypes.Status.Submitted && currentTime <= stamp + b.reviewWindow) {
            by = byPoster ? b.poster : b.provider;
        } else if (s == IBountyTypes.Status.Rejected && currentTime <= stamp + b.challengeWindow) {
            by = b.provider;
        } else {
            return;
        }
        vm.prank(by);
        escrow.dispute{value: BOND}(ids[i], b);
        ++hits["dispute"];
    }

    function resolve(uint256 seed, uint256 providerBps) external step("resolve") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Disputed);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (s != IBountyTypes.Status.Disputed) return;
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        uint16 bps = uint16(bound(providerBps, 0, 10_000));
        uint256 slashedBefore = registry.totalSlashed();
        vm.prank(arbiter);
        escrow.resolve(ids[i], b, bps);
        ++hits["resolve"];
        uint256 slashed = registry.totalSlashed() - slashedBefore;
        uint256 slashable = bps < 5_000 ? bondOf[i] * escrow.slashBps() / 10_000 : 0;
        if (slashed > slashable) slashOverBond = true;
        ghost_bondsSlashable += slashable;
        ghost_slashed += slashed;
        uint256 released = _released(b.token, bal, led);
        // The dispute bond also leaves the escrow; it is not part of the bounty's amount.
        if (b.token == address(0)) released -= BOND;
        paid[i] += released;
    }

    function submitEntry(uint256 seed, uint256 entrantSeed) external step("submitEntry") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Funded);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (
            s != IBountyTypes.Status.Funded || b.mode != IBountyTypes.Mode.Contest || currentTime > b.deadline
        ) {
            return;
        }
        (address entrant,) = _actor(entrantSeed);
        if (escrow.entries(ids[i], entrant) != bytes32(0)) return;
        vm.prank(entrant);
        escrow.submitEntry(ids[i], b, keccak256(abi.encode(entrant)));
        ++hits["submitEntry"];
        entrants[i].push(entrant);
    }

    function pickWinners(uint256 seed, uint256 countSeed, uint256 shareSeed) external step("pickWinners") {
        (bool ok, uint256 i) = _find(seed, IBountyTypes.Status.Funded);
        if (!ok) return;
        IBountyTypes.Bounty memory b = records[i];
        (IBountyTypes.Status s,) = _status(i);
        if (s != IBountyTypes.Status.Funded || b.mode != IBountyTypes.Mode.Contest) return;
        if (currentTime <= b.deadline || currentTime > uint256(b.deadline) + b.reviewWindow) return;
        uint256 n = entrants[i].length;
        if (n == 0) return;
        n = bound(countSeed, 1, n < b.maxWinners ? n : b.maxWinners);
        address[] memory winners = new address[](n);
        uint16[] memory shares = new uint16[](n);
        uint256 left = 10_000;
        for (uint256 k; k < n; ++k) {
            winners[k] = entrants[i][k];
            if (k == n - 1) {
                shares[k] = uint16(left);
            } else {
                uint256 sh = bound(uint256(keccak256(abi.encode(shareSeed, k))), 1, left - (n - 1 - k));
                shares[k] = uint16(sh);
                left -= sh;
            }
        }
        uint256 bal = _escrowBal(b.token);
        uint256 led = ledgerSum(b.token);
        vm.prank(b.evaluator);
        escrow.pickWinners(ids[i], b, winners, shares);
        ++hits["pickWinners"];
        paid[i] += _released(b.token, bal, led);
    }

    /// @dev The provider of an awarded auction funds a sub-bounty from its pending reward.
    function postFromReward(
        uint256 seed,
        uint256 amount,
        bool contest,
        bool withArbiter,
        bool posterEvaluates
    ) external step("postFromReward") {
        (bool ok, uint256 p) = _find(seed, IBountyTypes.Status.Awarded);
        if (!ok) return;
        IBountyTypes.Bounty memory parent = records[p];
        if (currentTime > parent.deadline) return;
        address pt = escrow.pledgeTokenOf(ids[p], parent.provider);
        (uint128 pledged,) = escrow.pledges(pt);
        uint256 net = parent.price - uint256(parent.price) * parent.feeBps / 10_000;
        if (pledged >= net) return;
        IBountyTypes.Bounty memory b = _newTerms(
            parent.provider, pt, bound(amount, 1, net - pledged), contest, withArbiter, posterEvaluates
        );
        bytes32 salt = bytes32(++saltCounter);
        vm.prank(b.poster);
        uint256 id = escrow.postFromReward(salt, b, ids[p], parent);
        ++hits["postFromReward"];
        if (!knownPledge[pt]) {
            knownPledge[pt] = true;
            pledgeTokens.push(pt);
        }
        ids.push(id);
        records.push(b);
        funded[ids.length - 1] = true;
    }

    /// @dev Redeems an account's credits in a pledge token, or checks that it is refused while
    ///      the parent is not settled in the pledging provider's favour.
    function redeemPledge(uint256 ptSeed, uint256 actorSeed) external step("redeemPledge") {
        if (pledgeTokens.length == 0) return;
        address pt = pledgeTokens[ptSeed % pledgeTokens.length];
        uint256 idx = actorSeed % (N_ACTORS + 1);
        address who = idx == N_ACTORS ? feeTo : actors[idx];
        uint256 credit = escrow.withdrawable(pt, who);
        if (credit == 0) return;
        (uint256 parentId,,) = escrow.pledgeSources(pt);
        (IBountyTypes.Status s,) = escrow.statusOf(parentId);
        (uint128 pledged, uint128 backed) = escrow.pledges(pt);
        vm.prank(who);
        if (s != IBountyTypes.Status.Completed && s != IBountyTypes.Status.Resolved) {
            if (s == IBountyTypes.Status.Expired || s == IBountyTypes.Status.Refunded) {
                vm.expectRevert(BountyEscrow.PledgeVoid.selector);
            } else {
                vm.expectRevert(abi.encodeWithSelector(BountyEscrow.PledgePending.selector, s));
            }
            escrow.redeemPledge(pt);
            return;
        }
        if (backed == 0) {
            vm.expectRevert(BountyEscrow.PledgeVoid.selector);
            escrow.redeemPledge(pt);
            return;
        }
        uint256 out = escrow.redeemPledge(pt);
        ++hits["redeemPledge"];
        assertEq(out, credit * backed / pledged, "redeemed at the backing rate");
        redeemedCredit[pt] += credit;
        redeemedPaid[pt] += out;
    }

    /// @dev Pays one token's fee pool (ETH, the ERC-20 or a pledge token) to the fee recipient:
    ///      exactly the pool leaves what the escrow owes, pushed or (a pledge token) credited to the
    ///      recipient's ledger entry; nothing created or lost.
    function collectFees(uint256 seed) external step("collectFees") {
        uint256 k = seed % (pledgeTokens.length + 2);
        address tkn = k == 0 ? address(0) : k == 1 ? address(token) : pledgeTokens[k - 2];
        uint256 pool = escrow.accruedFees(tkn);
        if (pool == 0) return;
        uint256 bal = _escrowBal(tkn);
        uint256 owed = ledgerSum(tkn);
        assertEq(escrow.collectFees(tkn), pool, "collects the whole pool");
        ++hits["collectFees"];
        assertEq(escrow.accruedFees(tkn), 0, "pool emptied");
        uint256 pushed = bal - _escrowBal(tkn);
        assertEq(owed - ledgerSum(tkn), pushed, "what left the escrow is what it no longer owes");
        if (k >= 2) assertEq(pushed, 0, "a pledge token is only ever credited");
        else assertEq(pushed, pool, "pushed to the recipient");
    }

    function withdraw(uint256 actorSeed, bool eth) external step("withdraw") {
        uint256 idx = actorSeed % (N_ACTORS + 1);
        address who = idx == N_ACTORS ? feeTo : actors[idx];
        address tkn = eth ? address(0) : address(token);
        if (escrow.withdrawable(tkn, who) == 0) return;
        if (eth && who == actors[0] && EscrowActor(payable(who)).mode() != EscrowActor.ReceiveMode.Accept) {
            return;
        }
        vm.prank(who);
        escrow.withdraw(tkn);
        ++hits["withdraw"];
    }
}
