// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice Minimal smart wallet: accepts signatures of its EOA `signer` (ERC-1271), can be switched
///         off, can call arbitrary targets, and can be told to reject incoming ETH.
contract MockERC1271Wallet is IERC1271 {
    address public immutable signer;
    bool public acceptSignatures = true;
    bool public rejectEth;

    constructor(address signer_) {
        signer = signer_;
    }

    /// @notice Toggle signature acceptance.
    function setAcceptSignatures(bool accept) external {
        acceptSignatures = accept;
    }

    /// @notice Toggle rejecting ETH.
    function setRejectEth(bool reject) external {
        rejectEth = reject;
    }

    /// @notice Call `target` with `data` and `value` (test helper; unauthenticated).
    function execute(address target, uint256 value, bytes calldata data)
        external
        payable
        returns (bytes memory)
    {
        (bool ok, bytes memory ret) = target.call{value: value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        return ret;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (!acceptSignatures) return 0xffffffff;
        (address rec, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(hash, signature);
        return err == ECDSA.RecoverError.NoError && rec == signer
            ? IERC1271.isValidSignature.selector
            : bytes4(0xffffffff);
    }

    /// @notice ERC-721 receiver hook (so the wallet can own agents).
    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return this.onERC721Received.selector;
    }

    receive() external payable {
        require(!rejectEth, "no eth");
    }
}
