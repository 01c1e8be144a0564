// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title Errors of PaymentChannel whose names clash with its events.
/// @dev `ChannelClosed` is both an event and an error of PaymentChannel; Solidity forbids both in one
///      scope, so the error lives here. Its selector is the plain `ChannelClosed()` selector.
library PaymentChannelErrors {
    /// @notice The channel is closed.
    error ChannelClosed();
}

/// @title Reef unidirectional micropayment channels with cumulative EIP-712 vouchers.
/// @notice A payer escrows native ETH or an ERC-20 for one payee. Off-chain, the payer signs
///         vouchers carrying the CUMULATIVE amount owed so far; the payee (or anyone on its
///         behalf) redeems the latest voucher and receives `cumulativeAmount - redeemed`.
///         `redeemBatch` settles vouchers from many channels/payers in one transaction and pays
///         once per run of consecutive vouchers sharing the same (token, payee).
/// @dev Channel storage is packed into three slots. Balances fit in uint96 (7.9e28 base units).
///      Batch policy: an invalid voucher in `redeemBatch` is SKIPPED (event `VoucherSkipped` with
///      the selector of the error `redeem` would have raised) so a single bad payer cannot grief a
///      payee's settlement batch; `redeem` reverts with the precise error instead.
///      Fee-on-transfer / rebasing-down tokens are rejected at deposit time (balance delta check).
contract PaymentChannel is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ types

    /// @notice A payer's signed promise: the payee is owed `cumulativeAmount` in total on `channelId`.
    struct Voucher {
        uint256 channelId;
        address payer;
        address payee;
        uint256 cumulativeAmount;
    }

    /// @notice Packed channel record (3 storage slots).
    struct Channel {
        // slot 0
        address payer;
        uint96 deposit; // total ever deposited
        // slot 1
        address payee;
        uint96 redeemed; // total ever paid to the payee
        // slot 2
        address token; // address(0) = native ETH
        uint40 closeRequestedAt; // 0 = no close requested
        uint32 challengePeriod; // seconds between requestClose and withdrawRemainder
        bool closed;
    }

    // ------------------------------------------------------------------ constants

    /// @notice EIP-712 type hash of `Voucher`.
    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(uint256 channelId,address payer,address payee,uint256 cumulativeAmount)");

    // ------------------------------------------------------------------ storage

    uint256 private _lastChannelId;
    mapping(uint256 channelId => Channel) private _channels;

    // ------------------------------------------------------------------ events

    /// @notice A channel was opened and funded.
    event ChannelOpened(
        uint256 indexed channelId,
        address indexed payer,
        address indexed payee,
        address token,
        uint256 amount,
        uint32 challengePeriod
    );
    /// @notice A channel was topped up by `from`; `newDeposit` is the channel's total deposit.
    event ChannelDeposited(
        uint256 indexed channelId, address indexed from, uint256 amount, uint256 newDeposit
    );
    /// @notice A voucher was redeemed; `paid` = `cumulativeAmount` minus what was already redeemed.
    event VoucherRedeemed(
        uint256 indexed channelId, address indexed payee, uint256 cumulativeAmount, uint256 paid
    );
    /// @notice A voucher in a batch was skipped; `reason` is the selector of the matching custom error.
    event VoucherSkipped(uint256 indexed channelId, bytes4 reason);
    /// @notice The payer requested to close; the remainder can be withdrawn from `closableAt`.
    event CloseRequested(uint256 indexed channelId, uint256 closableAt);
    /// @notice The channel is closed. `paidToPayee` is the lifetime total paid to the payee,
    ///         `refundedToPayer` what was returned to the payer at closing.
    event ChannelClosed(uint256 indexed channelId, uint256 paidToPayee, uint256 refundedToPayer);

    // ------------------------------------------------------------------ errors

    /// @notice An address argument was zero.
    error ZeroAddress();
    /// @notice An amount argument was zero.
    error ZeroAmount();
    /// @notice The channel's deposit would exceed uint96.
    error AmountTooLarge();
    /// @notice The challenge period must be non-zero.
    error InvalidChallengePeriod();
    /// @notice msg.value does not match (ETH: must equal amount; ERC-20: must be zero).
    error WrongMsgValue();
    /// @notice The token delivered less than `amount` (fee-on-transfer tokens are unsupported).
    error FeeOnTransferToken();
    /// @notice No channel with this id.
    error ChannelNotFound();
    /// @notice The voucher's channelId/payer/payee do not match the channel.
    error VoucherMismatch();
    /// @notice The voucher's cumulative amount is not above what was already redeemed.
    error NothingToRedeem();
    /// @notice The voucher's cumulative amount exceeds the channel deposit.
    error ExceedsDeposit();
    /// @notice The signature is not the payer's (ECDSA or ERC-1271).
    error InvalidSignature();
    /// @notice Caller is not the channel payer.
    error NotPayer();
    /// @notice Caller is not the channel payee.
    error NotPayee();
    /// @notice `requestClose` was already called.
    error CloseAlreadyRequested();
    /// @notice `requestClose` was not called.
    error CloseNotRequested();
    /// @notice The challenge period has not elapsed yet.
    error ChallengePeriodActive();
    /// @notice `vouchers.length != signatures.length`.
    error LengthMismatch();
    /// @notice A native ETH transfer failed.
    error EthTransferFailed();

    // ------------------------------------------------------------------ constructor

    constructor() EIP712("ReefPaymentChannel", "1") {}

    // ------------------------------------------------------------------ channel lifecycle

    /// @notice Open a channel from msg.sender to `payee`, escrowing `amount` of `token`.
    /// @param payee Recipient of redeemed vouchers.
    /// @param token ERC-20 token, or address(0) for native ETH (then msg.value must equal `amount`).
    /// @param amount Initial deposit (> 0, fits uint96).
    /// @param challengePeriod Seconds the payee has to redeem after `requestClose` (> 0).
    /// @return channelId The new channel id (ids start at 1).
    function open(address payee, address token, uint128 amount, uint32 challengePeriod)
        external
        payable
        nonReentrant
        returns (uint256 channelId)
    {
        if (payee == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint96).max) revert AmountTooLarge();
        if (challengePeriod == 0) revert InvalidChallengePeriod();
        _pull(token, amount);

        channelId = ++_lastChannelId;
        _channels[channelId] = Channel({
            payer: msg.sender,
            // forge-lint: disable-next-line(unsafe-typecast) -- amount <= uint96.max checked above
            deposit: uint96(amount),
            payee: payee,
            redeemed: 0,
            token: token,
            closeRequestedAt: 0,
            challengePeriod: challengePeriod,
            closed: false
        });
        emit ChannelOpened(channelId, msg.sender, payee, token, amount, challengePeriod);
    }

    /// @notice Top up an open channel. Anyone may deposit; any remainder is refunded to the payer.
    /// @dev Allowed while a close is pending (it does not cancel the close).
    /// @param channelId Channel to fund.
    /// @param amount Amount of the channel's token (ETH: must equal msg.value).
    function deposit(uint256 channelId, uint128 amount) external payable nonReentrant {
        Channel storage ch = _channels[channelId];
        if (ch.payer == address(0)) revert ChannelNotFound();
        if (ch.closed) revert PaymentChannelErrors.ChannelClosed();
        if (amount == 0) revert ZeroAmount();
        uint256 newDeposit = uint256(ch.deposit) + amount;
        if (newDeposit > type(uint96).max) revert AmountTooLarge();
        _pull(ch.token, amount);
        // forge-lint: disable-next-line(unsafe-typecast) -- newDeposit <= uint96.max checked above
        ch.deposit = uint96(newDeposit);
        emit ChannelDeposited(channelId, msg.sender, amount, newDeposit);
    }

    /// @notice Start the challenge period; only the payer. The payee may keep redeeming until the
    ///         channel is actually closed by `withdrawRemainder`.
    /// @param channelId Channel to close.
    function requestClose(uint256 channelId) external {
        Channel storage ch = _channels[channelId];
        if (ch.payer == address(0)) revert ChannelNotFound();
        if (msg.sender != ch.payer) revert NotPayer();
        if (ch.closed) revert PaymentChannelErrors.ChannelClosed();
        if (ch.closeRequestedAt != 0) revert CloseAlreadyRequested();
        ch.closeRequestedAt = uint40(block.timestamp);
        emit CloseRequested(channelId, block.timestamp + ch.challengePeriod);
    }

    /// @notice After the challenge period, refund `deposit - redeemed` to the payer and close.
    /// @dev Callable by anyone; funds always go to the payer.
    /// @param channelId Channel to finalize.
    /// @return refunded Amount returned to the payer.
    function withdrawRemainder(uint256 channelId) external nonReentrant returns (uint256 refunded) {
        Channel storage ch = _channels[channelId];
        if (ch.payer == address(0)) revert ChannelNotFound();
        if (ch.closed) revert PaymentChannelErrors.ChannelClosed();
        uint256 requestedAt = ch.closeRequestedAt;
        if (requestedAt == 0) revert CloseNotRequested();
        if (block.timestamp < requestedAt + ch.challengePeriod) revert ChallengePeriodActive();
        ch.closed = true;
        refunded = uint256(ch.deposit) - ch.redeemed;
        emit ChannelClosed(channelId, ch.redeemed, refunded);
        if (refunded != 0) _push(ch.token, ch.payer, refunded);
    }

    /// @notice Cooperative close by the payee: redeem `v` (if it adds anything) and refund the rest
    ///         to the payer at once, without waiting for a challenge period.
    /// @dev If `v.cumulativeAmount <= redeemed` nothing is paid and the signature is not checked
    ///      (the payee only gives up its own claim). The voucher must still name this channel.
    /// @param channelId Channel to close; must equal `v.channelId`.
    /// @param v Final voucher.
    /// @param sig Payer's signature over `v`.
    function close(uint256 channelId, Voucher calldata v, bytes calldata sig) external nonReentrant {
        Channel storage ch = _channels[channelId];
        address payer = ch.payer;
        if (payer == address(0)) revert ChannelNotFound();
        address payee = ch.payee;
        if (msg.sender != payee) revert NotPayee();
        if (ch.closed) revert PaymentChannelErrors.ChannelClosed();
        if (v.channelId != channelId || v.payer != payer || v.payee != payee) revert VoucherMismatch();

        uint256 dep = ch.deposit;
        uint256 already = ch.redeemed;
        uint256 paid;
        if (v.cumulativeAmount > already) {
            if (v.cumulativeAmount > dep) revert ExceedsDeposit();
            if (!_verifyVoucher(payer, v, sig)) revert InvalidSignature();
            paid = v.cumulativeAmount - already;
            already = v.cumulativeAmount;
            // forge-lint: disable-next-line(unsafe-typecast) -- already <= deposit <= uint96.max
            ch.redeemed = uint96(already);
            emit VoucherRedeemed(channelId, payee, already, paid);
        }
        ch.closed = true;
        uint256 refund = dep - already;
        emit ChannelClosed(channelId, already, refund);

        address token = ch.token;
        if (paid != 0) _push(token, payee, paid);
        if (refund != 0) _push(token, payer, refund);
    }

    // ------------------------------------------------------------------ redemption

    /// @notice Redeem one voucher. Anyone may submit; funds go to the voucher's payee.
    /// @dev Reverts with the precise error: ChannelNotFound, ChannelClosed, VoucherMismatch,
    ///      NothingToRedeem, ExceedsDeposit or InvalidSignature.
    /// @param v The voucher.
    /// @param sig Payer's EIP-712 signature (65-byte ECDSA, or anything the payer's ERC-1271 accepts).
    /// @return paid Amount transferred to the payee.
    function redeem(Voucher calldata v, bytes calldata sig) external nonReentrant returns (uint256 paid) {
        (bytes4 err, address payee, address token, uint256 amount) = _settle(v, sig);
        if (err != bytes4(0)) {
            assembly ("memory-safe") {
                mstore(0x00, err)
                revert(0x00, 0x04)
            }
        }
        paid = amount;
        _push(token, payee, paid);
    }

    /// @notice Redeem many vouchers (many payers/channels) in one transaction.
    /// @dev Invalid vouchers are skipped with `VoucherSkipped(channelId, errorSelector)`. Payments
    ///      are aggregated: one transfer per run of consecutive valid vouchers with the same
    ///      (token, payee) — order vouchers by (token, payee) off-chain for the cheapest batch.
    ///      A failing transfer (e.g. a payee that rejects ETH) reverts the whole batch.
    /// @param vouchers Vouchers to redeem.
    /// @param signatures Signatures, same order and length as `vouchers`.
    /// @return totalPaid Sum paid across all payees (mixed units if tokens differ).
    function redeemBatch(Voucher[] calldata vouchers, bytes[] calldata signatures)
        external
        nonReentrant
        returns (uint256 totalPaid)
    {
        uint256 n = vouchers.length;
        if (n != signatures.length) revert LengthMismatch();
        address runToken;
        address runPayee;
        uint256 runSum;
        for (uint256 i; i < n; ++i) {
            Voucher calldata v = vouchers[i];
            (bytes4 err, address payee, address token, uint256 paid) = _settle(v, signatures[i]);
            if (err != bytes4(0)) {
                emit VoucherSkipped(v.channelId, err);
                continue;
            }
            totalPaid += paid;
            if (payee == runPayee && token == runToken) {
                runSum += paid;
            } else {
                if (runSum != 0) _push(runToken, runPayee, runSum);
                runToken = token;
                runPayee = payee;
                runSum = paid;
            }
        }
        if (runSum != 0) _push(runToken, runPayee, runSum);
    }

    // ------------------------------------------------------------------ views

    /// @notice The full channel record (zeroed if it does not exist).
    /// @param channelId Channel id.
    function channel(uint256 channelId) external view returns (Channel memory) {
        return _channels[channelId];
    }

    /// @notice Id of the most recently opened channel (0 if none).
    function lastChannelId() external view returns (uint256) {
        return _lastChannelId;
    }

    /// @notice EIP-712 digest of `v` that the payer signs.
    /// @param v The voucher.
    function hashVoucher(Voucher calldata v) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(v));
    }

    /// @notice The EIP-712 domain separator (name "ReefPaymentChannel", version "1").
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ internals

    /// @dev Validates `v` and, if valid, records the redemption and emits `VoucherRedeemed`.
    ///      Returns a non-zero error selector (and changes nothing) if invalid. Does not transfer.
    function _settle(Voucher calldata v, bytes calldata sig)
        private
        returns (bytes4 err, address payee, address token, uint256 paid)
    {
        Channel storage ch = _channels[v.channelId];
        address payer = ch.payer;
        if (payer == address(0)) return (ChannelNotFound.selector, payee, token, 0);
        payee = ch.payee;
        token = ch.token;
        if (ch.closed) return (PaymentChannelErrors.ChannelClosed.selector, payee, token, 0);
        if (v.payer != payer || v.payee != payee) return (VoucherMismatch.selector, payee, token, 0);
        uint256 already = ch.redeemed;
        uint256 cumulative = v.cumulativeAmount;
        if (cumulative <= already) return (NothingToRedeem.selector, payee, token, 0);
        if (cumulative > ch.deposit) return (ExceedsDeposit.selector, payee, token, 0);
        if (!_verifyVoucher(payer, v, sig)) return (InvalidSignature.selector, payee, token, 0);
        paid = cumulative - already;
        // forge-lint: disable-next-line(unsafe-typecast) -- cumulative <= deposit <= uint96.max
        ch.redeemed = uint96(cumulative);
        emit VoucherRedeemed(v.channelId, payee, cumulative, paid);
    }

    /// @dev True if `sig` is `payer`'s signature over the EIP-712 digest of `v`.
    function _verifyVoucher(address payer, Voucher calldata v, bytes calldata sig)
        private
        view
        returns (bool)
    {
        return _isValidSig(payer, _hashTypedDataV4(_structHash(v)), sig);
    }

    /// @dev keccak256(abi.encode(VOUCHER_TYPEHASH, v.channelId, v.payer, v.payee, v.cumulativeAmount)).
    ///      Copies the 4 static words straight from calldata (dirty address bits would change the
    ///      hash and fail verification; they also fail the payer/payee equality checks).
    function _structHash(Voucher calldata v) private pure returns (bytes32 h) {
        bytes32 typeHash = VOUCHER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), v, 0x80)
            h := keccak256(m, 0xa0)
        }
    }

    /// @dev ECDSA first (EOAs, EIP-7702 accounts; skips an EXTCODESIZE in the common case), then
    ///      ERC-1271 if the signer has code.
    function _isValidSig(address signer, bytes32 digest, bytes calldata sig) private view returns (bool) {
        (address recovered, ECDSA.RecoverError e,) = ECDSA.tryRecoverCalldata(digest, sig);
        if (e == ECDSA.RecoverError.NoError && recovered == signer) return true;
        if (signer.code.length == 0) return false;
        return SignatureChecker.isValidERC1271SignatureNowCalldata(signer, digest, sig);
    }

    /// @dev Pull `amount` of `token` from msg.sender (or check msg.value for ETH).
    function _pull(address token, uint256 amount) private {
        if (token == address(0)) {
            if (msg.value != amount) revert WrongMsgValue();
        } else {
            if (msg.value != 0) revert WrongMsgValue();
            uint256 before = IERC20(token).balanceOf(address(this));
            IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
            uint256 afterBal = IERC20(token).balanceOf(address(this));
            if (afterBal < before || afterBal - before != amount) revert FeeOnTransferToken();
        }
    }

    /// @dev Send `amount` of `token` to `to`.
    function _push(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            bool ok;
            assembly ("memory-safe") {
                ok := call(gas(), to, amount, 0, 0, 0, 0)
            }
            if (!ok) revert EthTransferFailed();
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }
}
