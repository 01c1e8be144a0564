// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title ReefTestToken
/// @notice A freely mintable ERC-20 for development chains (anvil). Never deploy it on a real
///         network: anyone can mint.
/// @dev Implements EIP-3009 (transfer with authorization) so that x402's `exact` EVM scheme can
///      pay with it: the payer signs an EIP-712 `TransferWithAuthorization` off-chain, anyone (the
///      x402 facilitator) submits it. The EIP-712 domain is `name() / "1" / chainid / this`, the
///      values an x402 server advertises in `extra: {name, version}`. Nonces are random 32-byte
///      values, one-shot per authorizer (not sequential), so authorizations can be settled in any
///      order. Signatures are checked with `SignatureChecker`: EOAs (ECDSA) and ERC-1271 wallets.
contract ReefTestToken is ERC20, EIP712 {
    /// @notice keccak256("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice keccak256("ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice keccak256("CancelAuthorization(address authorizer,bytes32 nonce)")
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");

    /// @dev authorizer => nonce => used or canceled.
    mapping(address authorizer => mapping(bytes32 nonce => bool used)) private _authorizationStates;

    /// @notice Emitted when tokens are minted through the faucet.
    event Minted(address indexed to, uint256 amount);
    /// @notice Emitted when an authorization is executed (EIP-3009).
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    /// @notice Emitted when an authorization is canceled before use (EIP-3009).
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    /// @notice The authorization is not valid yet (`block.timestamp <= validAfter`).
    error AuthorizationNotYetValid(uint256 validAfter, uint256 nowTs);
    /// @notice The authorization has expired (`block.timestamp >= validBefore`).
    error AuthorizationExpired(uint256 validBefore, uint256 nowTs);
    /// @notice The nonce was already used or canceled by this authorizer.
    error AuthorizationAlreadyUsed(address authorizer, bytes32 nonce);
    /// @notice The signature is not the authorizer's over this authorization.
    error InvalidAuthorizationSignature(address authorizer);
    /// @notice `receiveWithAuthorization` must be called by the payee.
    error CallerNotPayee(address caller, address payee);

    constructor() ERC20("Reef Test USD", "rUSD") EIP712("Reef Test USD", "1") {}

    /// @notice Mints `amount` tokens to `to` (development faucet).
    /// @param to Recipient of the new tokens.
    /// @param amount Amount in base units (18 decimals).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
        emit Minted(to, amount);
    }

    /// @notice The EIP-712 domain separator of this token (`name() / "1" / chainid / this`).
    /// @return The domain separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice Whether `authorizer` already used or canceled `nonce` (EIP-3009).
    /// @param authorizer The signer of the authorization.
    /// @param nonce The authorization's 32-byte nonce.
    /// @return True if used or canceled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _authorizationStates[authorizer][nonce];
    }

    /// @notice Executes a transfer signed by `from` (EIP-3009), with an `(v, r, s)` signature.
    /// @param from Payer (the signer).
    /// @param to Payee.
    /// @param value Amount in base units.
    /// @param validAfter The transfer is valid strictly after this unix time.
    /// @param validBefore The transfer is valid strictly before this unix time.
    /// @param nonce Unique 32-byte nonce chosen by the payer.
    /// @param v Signature recovery byte.
    /// @param r Signature r.
    /// @param s Signature s.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _transferWithAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
            from,
            to,
            value,
            validAfter,
            validBefore,
            nonce,
            abi.encodePacked(r, s, v)
        );
    }

    /// @notice Executes a transfer signed by `from` (EIP-3009), with a packed or ERC-1271 signature.
    /// @param from Payer (the signer, an EOA or an ERC-1271 wallet).
    /// @param to Payee.
    /// @param value Amount in base units.
    /// @param validAfter The transfer is valid strictly after this unix time.
    /// @param validBefore The transfer is valid strictly before this unix time.
    /// @param nonce Unique 32-byte nonce chosen by the payer.
    /// @param signature 65-byte `r ‖ s ‖ v` for an EOA, or what the wallet's `isValidSignature` takes.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        _transferWithAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
    }

    /// @notice Like `transferWithAuthorization`, but only the payee may submit it, so a front-runner
    ///         cannot consume the authorization outside the payee's own transaction (EIP-3009).
    /// @param from Payer (the signer).
    /// @param to Payee; must be `msg.sender`.
    /// @param value Amount in base units.
    /// @param validAfter The transfer is valid strictly after this unix time.
    /// @param validBefore The transfer is valid strictly before this unix time.
    /// @param nonce Unique 32-byte nonce chosen by the payer.
    /// @param v Signature recovery byte.
    /// @param r Signature r.
    /// @param s Signature s.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        if (to != msg.sender) revert CallerNotPayee(msg.sender, to);
        _transferWithAuthorization(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH,
            from,
            to,
            value,
            validAfter,
            validBefore,
            nonce,
            abi.encodePacked(r, s, v)
        );
    }

    /// @notice Cancels an unused authorization (EIP-3009): its nonce can no longer be used.
    /// @param authorizer The signer of the authorization (and of this cancellation).
    /// @param nonce The nonce to cancel.
    /// @param v Signature recovery byte.
    /// @param r Signature r.
    /// @param s Signature s.
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        if (_authorizationStates[authorizer][nonce]) revert AuthorizationAlreadyUsed(authorizer, nonce);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)));
        if (!SignatureChecker.isValidSignatureNow(authorizer, digest, abi.encodePacked(r, s, v))) {
            revert InvalidAuthorizationSignature(authorizer);
        }
        _authorizationStates[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    /// @dev Checks the window, the nonce and the signature, marks the nonce used, then transfers.
    function _transferWithAuthorization(
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) private {
        // Strict bounds, as in EIP-3009: validAfter < now < validBefore.
        // slither-disable-next-line timestamp
        if (block.timestamp <= validAfter) revert AuthorizationNotYetValid(validAfter, block.timestamp);
        // slither-disable-next-line timestamp
        if (block.timestamp >= validBefore) revert AuthorizationExpired(validBefore, block.timestamp);
        if (_authorizationStates[from][nonce]) revert AuthorizationAlreadyUsed(from, nonce);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(typeHash, from, to, value, validAfter, validBefore, nonce))
        );
        if (!SignatureChecker.isValidSignatureNow(from, digest, signature)) {
            revert InvalidAuthorizationSignature(from);
        }
        _authorizationStates[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
    }
}
