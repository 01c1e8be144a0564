// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Contract without receive/fallback: every plain ETH transfer to it fails.
contract EthRejecter {}

/// @notice Burns all forwarded gas when receiving ETH (gas-griefing recipient).
contract GasBurner {
    receive() external payable {
        while (true) {}
    }
}
