// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IStakeRegistry} from "../../src/interfaces/IStakeRegistry.sol";

/// @notice Plain mintable ERC-20 used by the escrow tests.
contract EscrowMockToken is ERC20 {
    constructor() ERC20("Mock USD", "mUSD") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @notice ERC-20 that burns 1% of every transfer (fee-on-transfer).
contract EscrowFeeOnTransferToken is ERC20 {
    constructor() ERC20("Fee Token", "FOT") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 burnt = value / 100;
            super._update(from, address(0), burnt);
            value -= burnt;
        }
        super._update(from, to, value);
    }
}

/// @notice ERC-20 whose transfers to blacklisted accounts revert (USDC-like).
contract EscrowBlacklistToken is ERC20 {
    mapping(address => bool) public blacklisted;

    error Blacklisted(address account);

    constructor() ERC20("Blacklist USD", "bUSD") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setBlacklisted(address account, bool value) external {
        blacklisted[account] = value;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blacklisted[to]) revert Blacklisted(to);
        super._update(from, to, value);
    }
}

/// @notice Contract account that can act as poster/provider and can refuse (or grief) ETH.
contract EscrowActor {
    enum ReceiveMode {
        Accept,
        Revert,
        BurnGas
    }

    ReceiveMode public mode;

    error Refused();

    receive() external payable {
        if (mode == ReceiveMode.Revert) revert Refused();
        if (mode == ReceiveMode.BurnGas) {
            while (true) {}
        }
    }

    function setMode(ReceiveMode m) external {
        mode = m;
    }

    function exec(address target, uint256 value, bytes calldata data)
        external
        payable
        returns (bytes memory)
    {
        (bool ok, bytes memory ret) = target.call{value: value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }
}

/// @notice ERC-1271 smart wallet: valid signatures are ECDSA signatures of its owner key.
contract EscrowMockWallet is IERC1271 {
    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(hash, signature);
        if (err == ECDSA.RecoverError.NoError && recovered == owner) {
            return IERC1271.isValidSignature.selector;
        }
        return 0xffffffff;
    }
}

/// @notice Stake registry mock: settable stakes, records slashes; `slash` can be made to revert.
contract EscrowMockStakeRegistry is IStakeRegistry {
    mapping(address => uint256) public stakes;
    uint256 public slashCalls;
    uint256 public totalSlashed;
    address public lastSlashTo;
    bool public slashReverts;

    error SlashRefused();

    function setStake(address account, uint256 amount) external {
        stakes[account] = amount;
    }

    function setSlashReverts(bool value) external {
        slashReverts = value;
    }

    function stakeOf(address account) external view returns (uint256) {
        return stakes[account];
    }

    function slash(address account, uint256 amount, address to) external returns (uint256 slashed) {
        if (slashReverts) revert SlashRefused();
        slashed = amount < stakes[account] ? amount : stakes[account];
        stakes[account] -= slashed;
        ++slashCalls;
        totalSlashed += slashed;
        lastSlashTo = to;
    }
}
