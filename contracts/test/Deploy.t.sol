// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {Deploy} from "../script/Deploy.s.sol";
import {AgentRegistry} from "../src/AgentRegistry.sol";
import {BountyEscrow} from "../src/BountyEscrow.sol";
import {ReefTestToken} from "../src/devnet/ReefTestToken.sol";

/// @dev Exposes the script's internals (the script itself has a single public `run()`).
contract DeployHarness is Deploy {
    function deployAs(Config memory cfg, address deployer) external returns (Deployment memory d) {
        vm.startBroadcast(deployer);
        d = _deploy(cfg, deployer);
        vm.stopBroadcast();
    }

    function envConfig(address deployer) external view returns (Config memory) {
        return _envConfig(deployer);
    }

    function toJson(Deployment memory d) external pure returns (string memory) {
        return _toJson(d);
    }
}

contract DeployTest is Test {
    DeployHarness internal script;
    address internal deployer = makeAddr("deployer");

    /// @dev The first 6 accounts of anvil's default mnemonic.
    address[6] internal devAccounts = [
        0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266,
        0x70997970C51812dc3A010C7d01b50e0d17dc79C8,
        0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC,
        0x90F79bf6EB2c4f870365E785982E1f101E93b906,
        0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65,
        0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc
    ];

    function setUp() public {
        script = new DeployHarness();
    }

    function _defaults() internal view returns (Deploy.Config memory cfg) {
        cfg = script.envConfig(deployer);
    }

    function test_EnvDefaults() public view {
        string[7] memory vars = [
            "REEF_OWNER",
            "REEF_FEE_RECIPIENT",
            "REEF_FEE_BPS",
            "REEF_DISPUTE_BOND",
            "REEF_SLASH_BPS",
            "REEF_UNBONDING_DELAY",
            "REEF_MIN_BOND"
        ];
        for (uint256 i; i < vars.length; ++i) {
            if (vm.envExists(vars[i])) return; // caller overrides the defaults: nothing to check
        }
        Deploy.Config memory cfg = _defaults();
        assertEq(cfg.owner, deployer);
        assertEq(cfg.feeRecipient, deployer);
        assertEq(cfg.feeBps, 100);
        assertEq(cfg.disputeBond, 0.01 ether);
        assertEq(cfg.slashBps, 5_000);
        assertEq(cfg.unbondingDelay, 3_600);
        assertEq(cfg.minBond, 0);
    }

    function test_WiringOnDevnet() public {
        Deploy.Config memory cfg = _defaults();
        Deploy.Deployment memory d = script.deployAs(cfg, deployer);

        assertEq(d.chainId, 31337);
        assertEq(d.startBlock, block.number + 1);

        AgentRegistry reg = d.agentRegistry;
        BountyEscrow esc = d.bountyEscrow;
        assertEq(reg.escrow(), address(esc));
        assertEq(reg.owner(), deployer);
        assertEq(reg.unbondingDelay(), cfg.unbondingDelay);

        assertEq(esc.owner(), deployer);
        assertEq(esc.feeBps(), cfg.feeBps);
        assertEq(esc.feeRecipient(), cfg.feeRecipient);
        assertEq(address(esc.stakeRegistry()), address(reg));
        assertEq(esc.disputeBond(), cfg.disputeBond);
        assertEq(esc.slashBps(), cfg.slashBps);
        assertEq(esc.minBond(), cfg.minBond);

        assertEq(address(d.reputationRegistry.ledger()), address(esc));
        assertEq(d.reputationRegistry.getIdentityRegistry(), address(reg));
        assertEq(address(d.validationRegistry.ledger()), address(esc));
        assertEq(d.validationRegistry.getIdentityRegistry(), address(reg));
        assertEq(address(d.evaluatorPanel.escrow()), address(esc));
        assertGt(address(d.paymentChannel).code.length, 0);

        ReefTestToken token = d.testToken;
        assertGt(address(token).code.length, 0);
        for (uint256 i; i < devAccounts.length; ++i) {
            assertEq(token.balanceOf(devAccounts[i]), 1_000_000e18);
        }
        assertEq(token.totalSupply(), 6 * 1_000_000e18);
    }

    function test_NoTestTokenOffDevnet() public {
        vm.chainId(8453);
        Deploy.Deployment memory d = script.deployAs(_defaults(), deployer);
        assertEq(d.chainId, 8453);
        assertEq(address(d.testToken), address(0));
        assertEq(d.agentRegistry.escrow(), address(d.bountyEscrow));

        string memory json = script.toJson(d);
        assertFalse(vm.keyExistsJson(json, ".testToken"));
        assertEq(vm.parseJsonUint(json, ".chainId"), 8453);
    }

    function test_StakeGateDisabledWhenMinBondZero() public {
        Deploy.Config memory cfg = _defaults();
        cfg.minBond = 0;
        Deploy.Deployment memory d = script.deployAs(cfg, deployer);
        assertEq(d.bountyEscrow.minBond(), 0);
    }

    function test_StakeGateSetFromMinBond() public {
        Deploy.Config memory cfg = _defaults();
        cfg.minBond = 0.1 ether;
        Deploy.Deployment memory d = script.deployAs(cfg, deployer);
        assertEq(d.bountyEscrow.minBond(), 0.1 ether);
    }

    function test_OwnerHandover() public {
        Deploy.Config memory cfg = _defaults();
        address admin = makeAddr("admin");
        cfg.owner = admin;
        Deploy.Deployment memory d = script.deployAs(cfg, deployer);
        // wiring done by the deployer before the handover
        assertEq(d.agentRegistry.escrow(), address(d.bountyEscrow));
        assertEq(d.agentRegistry.owner(), admin);
        assertEq(d.bountyEscrow.owner(), deployer);
        assertEq(d.bountyEscrow.pendingOwner(), admin);
        vm.prank(admin);
        d.bountyEscrow.acceptOwnership();
        assertEq(d.bountyEscrow.owner(), admin);
    }

    function test_JsonShape() public {
        Deploy.Deployment memory d = script.deployAs(_defaults(), deployer);
        string memory json = script.toJson(d);

        string[] memory keys = vm.parseJsonKeys(json, "$");
        assertEq(keys.length, 9);
        assertEq(vm.parseJsonUint(json, ".chainId"), 31337);
        assertEq(vm.parseJsonUint(json, ".startBlock"), d.startBlock);
        assertEq(vm.parseJsonAddress(json, ".bountyEscrow"), address(d.bountyEscrow));
        assertEq(vm.parseJsonAddress(json, ".paymentChannel"), address(d.paymentChannel));
        assertEq(vm.parseJsonAddress(json, ".agentRegistry"), address(d.agentRegistry));
        assertEq(vm.parseJsonAddress(json, ".reputationRegistry"), address(d.reputationRegistry));
        assertEq(vm.parseJsonAddress(json, ".validationRegistry"), address(d.validationRegistry));
        assertEq(vm.parseJsonAddress(json, ".evaluatorPanel"), address(d.evaluatorPanel));
        assertEq(vm.parseJsonAddress(json, ".testToken"), address(d.testToken));

        // numbers are JSON numbers, addresses checksummed strings
        string memory expectedHead = string.concat(
            "{\n  \"chainId\": 31337,\n  \"startBlock\": ",
            vm.toString(d.startBlock),
            ",\n  \"bountyEscrow\": \"",
            vm.toString(address(d.bountyEscrow)),
            "\",\n"
        );
        assertEq(_prefix(json, bytes(expectedHead).length), expectedHead);
    }

    /// @dev The script's `run()` end to end (env config, broadcast by the default sender, no file
    ///      written outside a broadcasting script).
    function test_Run() public {
        Deploy s = new Deploy();
        Deploy.Deployment memory d = s.run();
        assertEq(d.agentRegistry.escrow(), address(d.bountyEscrow));
        assertEq(d.bountyEscrow.owner(), d.agentRegistry.owner());
        assertGt(address(d.testToken).code.length, 0);
    }

    function _prefix(string memory s, uint256 n) internal pure returns (string memory) {
        bytes memory b = bytes(s);
        bytes memory out = new bytes(n);
        for (uint256 i; i < n; ++i) {
            out[i] = b[i];
        }
        return string(out);
    }
}
