// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Base} from "./Base.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract NodeRegistryTest is Base {
    NodeRegistry reg;
    address owner = address(0xA11CE);
    address operator = address(0x0E7A);
    address stranger = address(0xBAD);
    bytes32 constant NODE = keccak256("node-1");

    function setUp() public {
        vm.roll(50);
        reg = new NodeRegistry(owner);
        vm.prank(owner);
        reg.registerNode(NODE, "ssh-rsa AAAAB3", "node.example+abcd+AQ", "https://node.example", operator);
    }

    function testRegisteredNodeReadable() public view {
        NodeRegistry.Node memory n = reg.getNode(NODE);
        assertEq(n.encryptionRecipient, "ssh-rsa AAAAB3", "recipient");
        assertEq(n.logPublicKey, "node.example+abcd+AQ", "log key");
        assertEq(n.endpoint, "https://node.example", "endpoint");
        assertEq(n.operator, operator, "operator");
        assertEq(n.registeredBlock, 50, "block");
        assertTrue(reg.isRegistered(NODE), "registered");
        assertEq(reg.nodeCount(), 1, "count");
        assertEq(reg.nodeIdAt(0), NODE, "id at");
    }

    function testNonOwnerCannotRegister() public {
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, operator));
        reg.registerNode(keccak256("n2"), "r", "k", "e", operator);
    }

    function testInvalidNodeRefused() public {
        vm.prank(owner);
        vm.expectRevert(NodeRegistry.InvalidNode.selector);
        reg.registerNode(bytes32(0), "r", "k", "e", operator);
        vm.prank(owner);
        vm.expectRevert(NodeRegistry.InvalidNode.selector);
        reg.registerNode(keccak256("n2"), "r", "k", "e", address(0));
    }

    function testOperatorAnchors() public {
        vm.roll(60);
        vm.prank(operator);
        reg.anchorCheckpoint(NODE, 3, keccak256("r3"));
        vm.roll(61);
        vm.prank(operator);
        reg.anchorCheckpoint(NODE, 7, keccak256("r7"));
        assertEq(reg.anchorCount(NODE), 2, "count");
        NodeRegistry.Anchor memory a = reg.anchorAt(NODE, 0);
        assertEq(a.size, 3, "size0");
        assertEq(a.root, keccak256("r3"), "root0");
        assertEq(a.blockNumber, 60, "block0");
        NodeRegistry.Anchor memory l = reg.latestAnchor(NODE);
        assertEq(l.size, 7, "latest size");
        assertEq(l.root, keccak256("r7"), "latest root");
    }

    function testOnlyOperatorAnchors() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE, stranger));
        reg.anchorCheckpoint(NODE, 3, keccak256("r3"));
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE, owner));
        reg.anchorCheckpoint(NODE, 3, keccak256("r3"));
        assertEq(reg.anchorCount(NODE), 0, "nothing anchored");
    }

    function testUnknownNodeAnchorRefused() public {
        bytes32 other = keccak256("other");
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.UnknownNode.selector, other));
        reg.anchorCheckpoint(other, 1, keccak256("r"));
    }

    function testShrinkingRefused() public {
        vm.prank(operator);
        reg.anchorCheckpoint(NODE, 7, keccak256("r7"));
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.CheckpointShrinks.selector, uint64(7), uint64(6)));
        reg.anchorCheckpoint(NODE, 6, keccak256("r6"));
    }

    function testForkRefusedAndSameAnchorIsNoop() public {
        vm.prank(operator);
        reg.anchorCheckpoint(NODE, 7, keccak256("r7"));
        vm.prank(operator);
        vm.expectRevert(
            abi.encodeWithSelector(NodeRegistry.CheckpointForks.selector, uint64(7), keccak256("r7"), keccak256("x"))
        );
        reg.anchorCheckpoint(NODE, 7, keccak256("x"));
        vm.prank(operator);
        reg.anchorCheckpoint(NODE, 7, keccak256("r7"));
        assertEq(reg.anchorCount(NODE), 1, "no duplicate");
    }

    function testNoAnchorYet() public {
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NoAnchor.selector, NODE));
        reg.latestAnchor(NODE);
    }

    function testReRegistrationKeepsAnchorsAndChangesOperator() public {
        vm.prank(operator);
        reg.anchorCheckpoint(NODE, 2, keccak256("r2"));
        vm.prank(owner);
        reg.registerNode(NODE, "ssh-rsa NEW", "k2", "e2", stranger);
        assertEq(reg.anchorCount(NODE), 1, "anchors kept");
        assertEq(reg.nodeCount(), 1, "listed once");
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotOperator.selector, NODE, operator));
        reg.anchorCheckpoint(NODE, 3, keccak256("r3"));
        vm.prank(stranger);
        reg.anchorCheckpoint(NODE, 3, keccak256("r3"));
    }
}
