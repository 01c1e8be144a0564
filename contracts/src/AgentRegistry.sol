// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";

/// @title Reef agent registry: ERC-8004 Identity Registry + native-ETH stake bond.
/// @notice Identity: every agent is an ERC-721 token ("Reef Agent", "REEF"); `tokenURI` is the
///         agent's registration file (agentURI). Ids are assigned incrementally from 0, as in the
///         ERC-8004 reference implementation. The reserved metadata key `agentWallet` starts as
///         the owner, can be changed only with an EIP-712 / ERC-1271 proof from the new wallet,
///         and is cleared whenever the token is transferred.
///         Stake: accounts (addresses, not agent ids) bond ETH; the escrow may slash bonded stake
///         first, then stake that is still unbonding.
/// @dev Stake accounting invariant: address(this).balance == Σ bonded + Σ unbonding + Σ
///      pendingSlashed (plus any ETH force-sent via selfdestruct/coinbase, which is unreachable).
contract AgentRegistry is ERC721URIStorage, EIP712, Ownable, ReentrancyGuardTransient, IStakeRegistry {
    // ------------------------------------------------------------------ types

    /// @notice ERC-8004 on-chain metadata entry for `register`.
    struct MetadataEntry {
        string metadataKey;
        bytes metadataValue;
    }

    /// @notice Stake that is waiting out the unbonding delay.
    struct Unbonding {
        uint128 amount;
        uint64 releaseAt;
    }

    // ------------------------------------------------------------------ constants

    /// @notice EIP-712 type signed by the NEW wallet in `setAgentWallet` (ERC-8004 reference type).
    bytes32 public constant AGENT_WALLET_SET_TYPEHASH =
        keccak256("AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)");
    /// @notice `setAgentWallet` deadlines may be at most this far in the future.
    uint256 public constant MAX_DEADLINE_DELAY = 5 minutes;
    /// @notice Gas forwarded to a slash recipient; on failure the amount becomes a pull balance.
    uint256 public constant SLASH_PAYOUT_GAS = 50_000;
    /// @notice The reserved metadata key.
    string public constant AGENT_WALLET_KEY = "agentWallet";
    bytes32 private constant _AGENT_WALLET_KEY_HASH = keccak256("agentWallet");

    // ------------------------------------------------------------------ storage

    /// @notice Seconds between `requestUnbond` and `withdrawUnbonded`.
    uint256 public immutable unbondingDelay;
    /// @notice The only address allowed to `slash` (set once).
    address public escrow;

    uint256 private _nextAgentId;
    mapping(uint256 agentId => mapping(string metadataKey => bytes metadataValue)) private _metadata;
    mapping(uint256 agentId => address wallet) private _agentWallet;

    mapping(address account => uint256 amount) private _bonded;
    mapping(address account => Unbonding) private _unbonding;
    mapping(address recipient => uint256 amount) private _pendingSlashed;

    // ------------------------------------------------------------------ events (ERC-8004)

    /// @notice A new agent was registered.
    event Registered(uint256 indexed agentId, string agentURI, address indexed owner);
    /// @notice On-chain metadata changed (also emitted for the reserved `agentWallet` key, with the
    ///         20-byte packed address, or empty bytes when cleared).
    event MetadataSet(
        uint256 indexed agentId, string indexed indexedMetadataKey, string metadataKey, bytes metadataValue
    );
    /// @notice The agentURI changed.
    event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy);

    // ------------------------------------------------------------------ events (stake)

    /// @notice The escrow allowed to slash was set.
    event EscrowSet(address indexed escrow);
    /// @notice `account` bonded `amount` more; `bonded` is its new bonded total.
    event Staked(address indexed account, uint256 amount, uint256 bonded);
    /// @notice `amount` moved from bonded to unbonding; the whole unbonding balance unlocks at `releaseAt`.
    event UnbondRequested(address indexed account, uint256 amount, uint256 releaseAt);
    /// @notice Unbonded stake was withdrawn.
    event Unbonded(address indexed account, uint256 amount);
    /// @notice Stake was slashed to `to`.
    event Slashed(address indexed account, uint256 amount, address indexed to);
    /// @notice Sending slashed ETH to `to` failed; it can be pulled with `withdrawSlashed`.
    event SlashPayoutDeferred(address indexed to, uint256 amount);
    /// @notice A deferred slash payout was withdrawn.
    event SlashedWithdrawn(address indexed to, uint256 amount);

    // ------------------------------------------------------------------ errors

    /// @notice Caller is neither the agent owner nor an approved operator.
    error NotAuthorized();
    /// @notice `agentWallet` cannot be set through metadata.
    error ReservedMetadataKey();
    /// @notice An address argument was zero.
    error ZeroAddress();
    /// @notice The wallet signature's deadline has passed.
    error SignatureExpired();
    /// @notice The wallet signature's deadline is more than MAX_DEADLINE_DELAY away.
    error DeadlineTooFar();
    /// @notice The new wallet's signature is invalid.
    error InvalidWalletSignature();
    /// @notice An amount argument was zero.
    error ZeroAmount();
    /// @notice Not enough bonded stake.
    error InsufficientStake();
    /// @notice Nothing is unbonding.
    error NothingUnbonding();
    /// @notice The unbonding delay has not elapsed.
    error UnbondingLocked(uint256 releaseAt);
    /// @notice Caller is not the escrow.
    error NotEscrow();
    /// @notice The escrow was already set.
    error EscrowAlreadySet();
    /// @notice No deferred slash payout.
    error NothingToWithdraw();
    /// @notice A native ETH transfer failed.
    error EthTransferFailed();

    // ------------------------------------------------------------------ constructor

    /// @param initialOwner Owner allowed to call `setEscrow` once.
    /// @param unbondingDelay_ Seconds an account must wait between `requestUnbond` and `withdrawUnbonded`.
    constructor(address initialOwner, uint256 unbondingDelay_)
        ERC721("Reef Agent", "REEF")
        EIP712("ERC8004IdentityRegistry", "1")
        Ownable(initialOwner)
    {
        unbondingDelay = unbondingDelay_;
    }

    // ================================================================== identity (ERC-8004)

    /// @notice Register a new agent owned by msg.sender with `agentURI` and extra metadata.
    /// @dev Reverts `ReservedMetadataKey` if an entry uses `agentWallet`.
    /// @param agentURI Registration file URI (becomes tokenURI).
    /// @param metadata Extra on-chain metadata.
    /// @return agentId The new agent id.
    function register(string calldata agentURI, MetadataEntry[] calldata metadata)
        external
        returns (uint256 agentId)
    {
        agentId = _register(agentURI);
        for (uint256 i; i < metadata.length; ++i) {
            _setMetadataUnchecked(agentId, metadata[i].metadataKey, metadata[i].metadataValue);
        }
    }

    /// @notice Register a new agent owned by msg.sender with `agentURI`.
    /// @param agentURI Registration file URI (becomes tokenURI).
    /// @return agentId The new agent id.
    function register(string calldata agentURI) external returns (uint256 agentId) {
        agentId = _register(agentURI);
    }

    /// @notice Register a new agent owned by msg.sender without a URI (set it later with `setAgentURI`).
    /// @return agentId The new agent id.
    function register() external returns (uint256 agentId) {
        agentId = _register("");
    }

    /// @notice Update the agentURI (tokenURI). Owner or approved operator only.
    /// @param agentId Agent id.
    /// @param newURI New registration file URI.
    function setAgentURI(uint256 agentId, string calldata newURI) external {
        _requireAuthorized(agentId);
        _setTokenURI(agentId, newURI);
        emit URIUpdated(agentId, newURI, msg.sender);
    }

    /// @notice Read on-chain metadata. For `agentWallet` returns the 20-byte packed wallet (empty if unset).
    /// @param agentId Agent id.
    /// @param metadataKey Key.
    function getMetadata(uint256 agentId, string calldata metadataKey) external view returns (bytes memory) {
        if (keccak256(bytes(metadataKey)) == _AGENT_WALLET_KEY_HASH) {
            address wallet = _agentWallet[agentId];
            return wallet == address(0) ? bytes("") : abi.encodePacked(wallet);
        }
        return _metadata[agentId][metadataKey];
    }

    /// @notice Set on-chain metadata. Owner or approved operator only; `agentWallet` is reserved.
    /// @param agentId Agent id.
    /// @param metadataKey Key (not `agentWallet`).
    /// @param metadataValue Value.
    function setMetadata(uint256 agentId, string calldata metadataKey, bytes calldata metadataValue)
        external
    {
        _requireAuthorized(agentId);
        _setMetadataUnchecked(agentId, metadataKey, metadataValue);
    }

    /// @notice Point `agentWallet` at `newWallet`, proven by `newWallet`'s signature over the EIP-712
    ///         `AgentWalletSet(agentId, newWallet, owner, deadline)` (ECDSA, or ERC-1271 for contracts).
    /// @dev Owner or approved operator only. `block.timestamp <= deadline <= now + MAX_DEADLINE_DELAY`.
    /// @param agentId Agent id.
    /// @param newWallet The wallet to set (non-zero).
    /// @param deadline Signature expiry (unix seconds).
    /// @param signature `newWallet`'s signature.
    function setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes calldata signature)
        external
    {
        address owner = _requireAuthorized(agentId);
        if (newWallet == address(0)) revert ZeroAddress();
        if (block.timestamp > deadline) revert SignatureExpired();
        if (deadline > block.timestamp + MAX_DEADLINE_DELAY) revert DeadlineTooFar();
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(AGENT_WALLET_SET_TYPEHASH, agentId, newWallet, owner, deadline))
        );
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError || recovered != newWallet) {
            if (!SignatureChecker.isValidERC1271SignatureNowCalldata(newWallet, digest, signature)) {
                revert InvalidWalletSignature();
            }
        }
        _setAgentWallet(agentId, newWallet);
    }

    /// @notice The agent's payment wallet (owner at registration, zero after a transfer or unset).
    /// @dev Reverts `ERC721NonexistentToken` for an unknown agent.
    /// @param agentId Agent id.
    function getAgentWallet(uint256 agentId) external view returns (address) {
        _requireOwned(agentId);
        return _agentWallet[agentId];
    }

    /// @notice Clear `agentWallet`. Owner or approved operator only.
    /// @param agentId Agent id.
    function unsetAgentWallet(uint256 agentId) external {
        _requireAuthorized(agentId);
        _setAgentWallet(agentId, address(0));
    }

    /// @notice True if `spender` is the owner of `agentId` or approved for it (ERC-8004 helper).
    /// @dev Reverts `ERC721NonexistentToken` for an unknown agent.
    /// @param spender Address to check.
    /// @param agentId Agent id.
    function isAuthorizedOrOwner(address spender, uint256 agentId) external view returns (bool) {
        return _isAuthorized(_requireOwned(agentId), spender, agentId);
    }

    /// @notice Number of agents ever registered (the next id to be assigned).
    function totalAgents() external view returns (uint256) {
        return _nextAgentId;
    }

    // ================================================================== stake bond

    /// @notice Set the escrow allowed to slash. Owner only, once.
    /// @param escrow_ Escrow contract.
    function setEscrow(address escrow_) external onlyOwner {
        if (escrow_ == address(0)) revert ZeroAddress();
        if (escrow != address(0)) revert EscrowAlreadySet();
        escrow = escrow_;
        emit EscrowSet(escrow_);
    }

    /// @notice Bond msg.value as msg.sender's stake.
    function stake() external payable {
        if (msg.value == 0) revert ZeroAmount();
        uint256 bonded = _bonded[msg.sender] + msg.value;
        _bonded[msg.sender] = bonded;
        emit Staked(msg.sender, msg.value, bonded);
    }

    /// @notice Move `amount` from bonded to unbonding. The release time of the WHOLE unbonding
    ///         balance is reset to now + unbondingDelay. Unbonding stake can still be slashed.
    /// @param amount Amount to unbond.
    function requestUnbond(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 bonded = _bonded[msg.sender];
        if (amount > bonded) revert InsufficientStake();
        _bonded[msg.sender] = bonded - amount;
        Unbonding storage u = _unbonding[msg.sender];
        uint256 releaseAt = block.timestamp + unbondingDelay;
        // forge-lint: disable-next-line(unsafe-typecast) -- stake is bounded by the ETH supply (< 2^128)
        u.amount += uint128(amount);
        // forge-lint: disable-next-line(unsafe-typecast) -- timestamps fit uint64
        u.releaseAt = uint64(releaseAt);
        emit UnbondRequested(msg.sender, amount, releaseAt);
    }

    /// @notice Withdraw all unbonding stake once its delay has elapsed.
    /// @return amount Amount sent to msg.sender.
    function withdrawUnbonded() external nonReentrant returns (uint256 amount) {
        Unbonding memory u = _unbonding[msg.sender];
        if (u.amount == 0) revert NothingUnbonding();
        if (block.timestamp < u.releaseAt) revert UnbondingLocked(u.releaseAt);
        amount = u.amount;
        delete _unbonding[msg.sender];
        emit Unbonded(msg.sender, amount);
        _sendOrRevert(msg.sender, amount);
    }

    /// @inheritdoc IStakeRegistry
    /// @dev Escrow only. Takes from bonded first, then unbonding; pays `to` with SLASH_PAYOUT_GAS
    ///      gas, crediting a `withdrawSlashed` balance if that send fails.
    function slash(address account, uint256 amount, address to)
        external
        nonReentrant
        returns (uint256 slashed)
    {
        address escrow_ = escrow;
        if (msg.sender != escrow_ || escrow_ == address(0)) revert NotEscrow();
        if (to == address(0)) revert ZeroAddress();
        uint256 bonded = _bonded[account];
        uint256 fromBonded = amount < bonded ? amount : bonded;
        uint256 rest = amount - fromBonded;
        uint256 unbonding = _unbonding[account].amount;
        uint256 fromUnbonding = rest < unbonding ? rest : unbonding;
        slashed = fromBonded + fromUnbonding;
        if (slashed == 0) return 0;
        if (fromBonded != 0) _bonded[account] = bonded - fromBonded;
        if (fromUnbonding == unbonding) {
            if (unbonding != 0) delete _unbonding[account];
        } else if (fromUnbonding != 0) {
            // forge-lint: disable-next-line(unsafe-typecast) -- < existing uint128 amount
            _unbonding[account].amount = uint128(unbonding - fromUnbonding);
        }
        emit Slashed(account, slashed, to);

        bool ok;
        uint256 gasLimit = SLASH_PAYOUT_GAS;
        assembly ("memory-safe") {
            ok := call(gasLimit, to, slashed, 0, 0, 0, 0)
        }
        if (!ok) {
            _pendingSlashed[to] += slashed;
            emit SlashPayoutDeferred(to, slashed);
        }
    }

    /// @notice Withdraw slashed ETH whose push payment to msg.sender failed.
    /// @return amount Amount sent.
    function withdrawSlashed() external nonReentrant returns (uint256 amount) {
        amount = _pendingSlashed[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        _pendingSlashed[msg.sender] = 0;
        emit SlashedWithdrawn(msg.sender, amount);
        _sendOrRevert(msg.sender, amount);
    }

    /// @inheritdoc IStakeRegistry
    function stakeOf(address account) external view returns (uint256) {
        return _bonded[account];
    }

    /// @notice Stake of `account` that is unbonding and when it unlocks.
    /// @param account Account.
    /// @return amount Unbonding amount.
    /// @return releaseAt Unix time from which `withdrawUnbonded` succeeds (0 if nothing unbonding).
    function unbondingOf(address account) external view returns (uint256 amount, uint256 releaseAt) {
        Unbonding memory u = _unbonding[account];
        return (u.amount, u.releaseAt);
    }

    /// @notice Slashed ETH waiting for `recipient` to call `withdrawSlashed`.
    /// @param recipient Recipient.
    function pendingSlashedOf(address recipient) external view returns (uint256) {
        return _pendingSlashed[recipient];
    }

    /// @notice EIP-712 domain separator (name "ERC8004IdentityRegistry", version "1").
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ================================================================== internals

    function _register(string memory agentURI) private returns (uint256 agentId) {
        agentId = _nextAgentId++;
        _safeMint(msg.sender, agentId); // _update sets agentWallet = owner
        if (bytes(agentURI).length != 0) _setTokenURI(agentId, agentURI);
        emit Registered(agentId, agentURI, msg.sender);
    }

    function _setMetadataUnchecked(uint256 agentId, string calldata key, bytes calldata value) private {
        if (keccak256(bytes(key)) == _AGENT_WALLET_KEY_HASH) revert ReservedMetadataKey();
        _metadata[agentId][key] = value;
        emit MetadataSet(agentId, key, key, value);
    }

    function _setAgentWallet(uint256 agentId, address wallet) private {
        _agentWallet[agentId] = wallet;
        emit MetadataSet(
            agentId,
            AGENT_WALLET_KEY,
            AGENT_WALLET_KEY,
            wallet == address(0) ? bytes("") : abi.encodePacked(wallet)
        );
    }

    /// @dev Returns the owner; reverts `ERC721NonexistentToken` / `NotAuthorized`.
    function _requireAuthorized(uint256 agentId) private view returns (address owner) {
        owner = _requireOwned(agentId);
        if (!_isAuthorized(owner, msg.sender, agentId)) revert NotAuthorized();
    }

    function _sendOrRevert(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert EthTransferFailed();
    }

    /// @dev Mint: agentWallet := owner. Transfer: agentWallet cleared (before any receiver callback).
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from == address(0)) {
            _setAgentWallet(tokenId, to);
        } else if (_agentWallet[tokenId] != address(0) || to == address(0)) {
            _setAgentWallet(tokenId, address(0));
        }
    }
}
