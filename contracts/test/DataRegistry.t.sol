// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Base} from "./Base.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {DataRegistry} from "../src/DataRegistry.sol";

contract DataRegistryTest is Base {
    NodeRegistry nodes;
    DataRegistry data;
    address alice = address(0xA1);
    address bob = address(0xB0);
    bytes32 constant NODE = keccak256("node-1");
    bytes32 constant CT = keccak256("ciphertext");

    function setUp() public {
        vm.roll(10);
        nodes = new NodeRegistry(address(this));
        nodes.registerNode(NODE, "ssh-rsa AAAA", "k", "e", address(0x0E7A));
        data = new DataRegistry(nodes);
    }

    function testContributeAndList() public {
        vm.prank(alice);
        data.contribute(CT, "file:///data/ct.age", 1234, NODE);
        assertEq(data.contributionCount(NODE), 1, "count");
        DataRegistry.Contribution memory c = data.contributionAt(NODE, 0);
        assertEq(c.sha256, CT, "sha");
        assertEq(c.uri, "file:///data/ct.age", "uri");
        assertEq(c.size, 1234, "size");
        assertEq(c.nodeId, NODE, "node");
        assertEq(c.contributor, alice, "contributor");
        assertTrue(!c.withdrawn, "not withdrawn");
        assertEq(c.contributedBlock, 10, "block");
    }

    function testContributorWithdraws() public {
        vm.prank(alice);
        data.contribute(CT, "u", 1, NODE);
        vm.prank(alice);
        data.withdraw(CT);
        assertTrue(data.getContribution(CT).withdrawn, "withdrawn");
        assertTrue(data.contributionAt(NODE, 0).withdrawn, "listed as withdrawn");
    }

    function testOnlyContributorWithdraws() public {
        vm.prank(alice);
        data.contribute(CT, "u", 1, NODE);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.NotContributor.selector, CT, bob));
        data.withdraw(CT);
        assertTrue(!data.getContribution(CT).withdrawn, "still there");
    }

    function testWithdrawTwiceOrUnknownRefused() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.UnknownContribution.selector, CT));
        data.withdraw(CT);
        vm.prank(alice);
        data.contribute(CT, "u", 1, NODE);
        vm.prank(alice);
        data.withdraw(CT);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.AlreadyWithdrawn.selector, CT));
        data.withdraw(CT);
    }

    function testDuplicateRefusedEvenAfterWithdrawal() public {
        vm.prank(alice);
        data.contribute(CT, "u", 1, NODE);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.AlreadyContributed.selector, CT));
        data.contribute(CT, "u", 1, NODE);
        vm.prank(alice);
        data.withdraw(CT);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.AlreadyContributed.selector, CT));
        data.contribute(CT, "u", 1, NODE);
    }

    function testUnknownNodeRefused() public {
        bytes32 other = keccak256("other");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(DataRegistry.UnknownNode.selector, other));
        data.contribute(CT, "u", 1, other);
    }

    function testInvalidContributionRefused() public {
        vm.prank(alice);
        vm.expectRevert(DataRegistry.InvalidContribution.selector);
        data.contribute(bytes32(0), "u", 1, NODE);
        vm.prank(alice);
        vm.expectRevert(DataRegistry.InvalidContribution.selector);
        data.contribute(CT, "u", 0, NODE);
    }
}
