// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReefTestToken
/// @notice A freely mintable ERC-20 for development chains (anvil). Never deploy it on a real
///         network: anyone can mint.
contract ReefTestToken is ERC20 {
    /// @notice Emitted when tokens are minted through the faucet.
    event Minted(address indexed to, uint256 amount);

    constructor() ERC20("Reef Test USD", "rUSD") {}

    /// @notice Mints `amount` tokens to `to` (development faucet).
    /// @param to Recipient of the new tokens.
    /// @param amount Amount in base units (18 decimals).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
        emit Minted(to, amount);
    }
}
