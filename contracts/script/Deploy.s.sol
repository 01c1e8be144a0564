// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Script, console2} from "forge-std/Script.sol";
import {VmSafe} from "forge-std/Vm.sol";

import {AgentRegistry} from "../src/AgentRegistry.sol";
import {BountyEscrow} from "../src/BountyEscrow.sol";
import {EvaluatorPanel, IPanelEscrow} from "../src/EvaluatorPanel.sol";
import {PaymentChannel} from "../src/PaymentChannel.sol";
import {ReputationRegistry} from "../src/ReputationRegistry.sol";
import {ValidationRegistry} from "../src/ValidationRegistry.sol";
import {ReefTestToken} from "../src/devnet/ReefTestToken.sol";
import {IStakeRegistry} from "../src/interfaces/IStakeRegistry.sol";

/// @title Deploys Reef's contracts and writes `deployments/<chainId>.json`.
/// @notice Mirrors `escrow-client/src/deploy.rs`. Usage (see `anvil-scripts/deploy.sh`):
///
///         forge script script/Deploy.s.sol --rpc-url $RPC_URL --broadcast --private-key $PRIVATE_KEY
///
///         Parameters come from env vars (devnet defaults in brackets):
///         REEF_FEE_BPS [100], REEF_DISPUTE_BOND [0.01 ether], REEF_SLASH_BPS [5000],
///         REEF_UNBONDING_DELAY [3600], REEF_MIN_BOND [0], REEF_FEE_RECIPIENT [deployer],
///         REEF_OWNER [deployer].
///         REEF_MIN_BOND (stake-registry wei) sets the escrow's stake gate: every award must bond
///         at least that much stake and every contest entrant hold it; 0 means "no gate" (bids
///         still bond what they sign). On chain 31337 a ReefTestToken is also deployed
///         and 1,000,000e18 minted to each of the first 6 anvil dev accounts.
///
///         The deployments file is only written when broadcasting (not on a dry run, not in tests).
///         `startBlock` is the block after the one the script forked from: the block of the first
///         deployment transaction on an automining devnet, and a safe lower bound elsewhere.
///         If REEF_OWNER differs from the deployer, ownership is handed over after the wiring:
///         AgentRegistry at once (Ownable), BountyEscrow via Ownable2Step (the new owner must call
///         `acceptOwnership`).
contract Deploy is Script {
    /// @dev Parameters of a deployment.
    struct Config {
        address owner;
        address feeRecipient;
        uint16 feeBps;
        uint256 disputeBond;
        uint16 slashBps;
        uint256 unbondingDelay;
        uint256 minBond;
    }

    /// @dev Result of a deployment (`testToken` is zero off-devnet).
    struct Deployment {
        uint256 chainId;
        uint256 startBlock;
        BountyEscrow bountyEscrow;
        PaymentChannel paymentChannel;
        AgentRegistry agentRegistry;
        ReputationRegistry reputationRegistry;
        ValidationRegistry validationRegistry;
        EvaluatorPanel evaluatorPanel;
        ReefTestToken testToken;
    }

    uint256 internal constant DEVNET_CHAIN_ID = 31337;
    uint256 internal constant DEV_ACCOUNTS = 6;
    uint256 internal constant DEV_MINT = 1_000_000e18;
    string internal constant ANVIL_MNEMONIC = "test test test test test test test test test test test junk";

    /// @notice Deploys and wires everything with the broadcasting key, then writes the deployments
    ///         file (broadcast only).
    function run() external returns (Deployment memory d) {
        vm.startBroadcast();
        (, address deployer,) = vm.readCallers();
        Config memory cfg = _envConfig(deployer);
        d = _deploy(cfg, deployer);
        vm.stopBroadcast();

        string memory json = _toJson(d);
        console2.log(json);
        if (
            vm.isContext(VmSafe.ForgeContext.ScriptBroadcast)
                || vm.isContext(VmSafe.ForgeContext.ScriptResume)
        ) {
            string memory dir = string.concat(vm.projectRoot(), "/../deployments");
            vm.createDir(dir, true);
            string memory path = string.concat(dir, "/", vm.toString(block.chainid), ".json");
            vm.writeFile(path, json);
            console2.log("wrote", path);
        } else {
            console2.log("dry run: deployments file not written (pass --broadcast)");
        }
    }

    /// @dev Reads the parameters from the environment, with devnet defaults.
    function _envConfig(address deployer) internal view returns (Config memory cfg) {
        cfg.owner = vm.envOr("REEF_OWNER", deployer);
        cfg.feeRecipient = vm.envOr("REEF_FEE_RECIPIENT", deployer);
        uint256 feeBps = vm.envOr("REEF_FEE_BPS", uint256(100));
        uint256 slashBps = vm.envOr("REEF_SLASH_BPS", uint256(5_000));
        require(feeBps <= type(uint16).max && slashBps <= type(uint16).max, "Deploy: bps out of range");
        // forge-lint: disable-next-line(unsafe-typecast) -- range checked above
        cfg.feeBps = uint16(feeBps);
        // forge-lint: disable-next-line(unsafe-typecast) -- range checked above
        cfg.slashBps = uint16(slashBps);
        cfg.disputeBond = vm.envOr("REEF_DISPUTE_BOND", uint256(0.01 ether));
        cfg.unbondingDelay = vm.envOr("REEF_UNBONDING_DELAY", uint256(3_600));
        cfg.minBond = vm.envOr("REEF_MIN_BOND", uint256(0));
    }

    /// @dev Deploys and wires the contracts. Must run inside a broadcast by `deployer`.
    function _deploy(Config memory cfg, address deployer) internal returns (Deployment memory d) {
        d.chainId = block.chainid;
        d.startBlock = block.number + 1;

        d.agentRegistry = new AgentRegistry(deployer, cfg.unbondingDelay);
        d.bountyEscrow = new BountyEscrow(
            deployer,
            cfg.feeRecipient,
            cfg.feeBps,
            IStakeRegistry(address(d.agentRegistry)),
            cfg.disputeBond,
            cfg.slashBps
        );
        d.agentRegistry.setEscrow(address(d.bountyEscrow));
        if (cfg.minBond != 0) d.bountyEscrow.setStakeGate(cfg.minBond);
        d.reputationRegistry = new ReputationRegistry(address(d.agentRegistry), address(d.bountyEscrow));
        d.validationRegistry = new ValidationRegistry(address(d.agentRegistry), address(d.bountyEscrow));
        d.paymentChannel = new PaymentChannel();
        d.evaluatorPanel = new EvaluatorPanel(IPanelEscrow(address(d.bountyEscrow)));

        if (block.chainid == DEVNET_CHAIN_ID) {
            d.testToken = new ReefTestToken();
            for (uint32 i; i < DEV_ACCOUNTS; ++i) {
                d.testToken.mint(vm.addr(vm.deriveKey(ANVIL_MNEMONIC, i)), DEV_MINT);
            }
        }

        if (cfg.owner != deployer) {
            d.agentRegistry.transferOwnership(cfg.owner);
            d.bountyEscrow.transferOwnership(cfg.owner); // pending until cfg.owner accepts
        }
    }

    /// @dev `deployments/<chainId>.json`, formatted like `Deployment::save` in escrow-client
    ///      (serde `to_string_pretty`): camelCase keys, checksummed addresses, numbers unquoted,
    ///      `testToken` omitted off-devnet.
    function _toJson(Deployment memory d) internal pure returns (string memory json) {
        json = string.concat(
            "{\n",
            '  "chainId": ',
            vm.toString(d.chainId),
            ",\n",
            '  "startBlock": ',
            vm.toString(d.startBlock),
            ",\n",
            _field("bountyEscrow", address(d.bountyEscrow)),
            _field("paymentChannel", address(d.paymentChannel)),
            _field("agentRegistry", address(d.agentRegistry)),
            _field("reputationRegistry", address(d.reputationRegistry)),
            _field("validationRegistry", address(d.validationRegistry))
        );
        json = string.concat(
            json,
            '  "evaluatorPanel": "',
            vm.toString(address(d.evaluatorPanel)),
            address(d.testToken) == address(0) ? '"\n' : '",\n',
            address(d.testToken) == address(0)
                ? ""
                : string.concat('  "testToken": "', vm.toString(address(d.testToken)), '"\n'),
            "}\n"
        );
    }

    function _field(string memory key, address value) private pure returns (string memory) {
        return string.concat('  "', key, '": "', vm.toString(value), '",\n');
    }
}
