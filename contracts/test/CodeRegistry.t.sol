// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Base} from "./Base.sol";
import {CodeRegistry} from "../src/CodeRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract CodeRegistryTest is Base {
    CodeRegistry reg;
    address owner = address(0xA11CE);
    address guardian = address(0x6A4D);
    address stranger = address(0xBAD);
    bytes32 constant TREE = keccak256("tree");
    bytes20 constant TREE1 = bytes20(keccak256("tree1"));

    function setUp() public {
        vm.warp(1_000_000);
        vm.roll(100);
        reg = new CodeRegistry(owner, guardian);
    }

    function recipients() internal pure returns (string[] memory r) {
        r = new string[](2);
        r[0] = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
        r[1] = "ssh-ed25519 AAAA";
    }

    function approveAsOwner(uint64 expiresAt) internal {
        vm.prank(owner);
        reg.approve(TREE, TREE1, recipients(), expiresAt, "https://example.invalid/pr/1");
    }

    function testOwnerApproves() public {
        approveAsOwner(0);
        assertTrue(reg.isApproved(TREE), "approved");
        CodeRegistry.Approval memory a = reg.getApproval(TREE);
        assertEq(a.treeSha256, TREE, "sha256");
        assertTrue(a.treeSha1 == TREE1, "sha1");
        assertEq(a.recipients.length, 2, "recipients");
        assertEq(a.recipients[1], "ssh-ed25519 AAAA", "recipient");
        assertEq(a.uri, "https://example.invalid/pr/1", "uri");
        assertEq(a.approvedBlock, 100, "approved block");
        assertEq(a.approvedAt, 1_000_000, "approved at");
        assertTrue(!a.revoked, "not revoked");
        assertEq(reg.approvalCount(), 1, "count");
        assertEq(reg.treeAt(0), TREE, "tree at");
    }

    function testUnknownTreeIsNotApproved() public view {
        assertTrue(!reg.isApproved(TREE), "unknown");
        assertEq(reg.getApproval(TREE).approvedBlock, 0, "empty record");
    }

    function testNonOwnerCannotApprove() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        reg.approve(TREE, TREE1, recipients(), 0, "");
    }

    function testGuardianCannotApprove() public {
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, guardian));
        reg.approve(TREE, TREE1, recipients(), 0, "");
    }

    function testZeroTreeIdRefused() public {
        vm.prank(owner);
        vm.expectRevert(CodeRegistry.InvalidTreeId.selector);
        reg.approve(bytes32(0), TREE1, recipients(), 0, "");
        vm.prank(owner);
        vm.expectRevert(CodeRegistry.InvalidTreeId.selector);
        reg.approve(TREE, bytes20(0), recipients(), 0, "");
    }

    function testApprovingAlreadyExpiredRefused() public {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(CodeRegistry.AlreadyExpired.selector, uint64(999_999), 1_000_000));
        reg.approve(TREE, TREE1, recipients(), 999_999, "");
    }

    function testExpiredApprovalIsNotApproved() public {
        approveAsOwner(1_000_100);
        assertTrue(reg.isApproved(TREE), "approved before expiry");
        vm.warp(1_000_099);
        assertTrue(reg.isApproved(TREE), "approved just before expiry");
        vm.warp(1_000_100);
        assertTrue(!reg.isApproved(TREE), "expired at expiresAt");
    }

    function testGuardianRevokes() public {
        approveAsOwner(0);
        vm.prank(guardian);
        reg.revoke(TREE, "leaks data");
        assertTrue(!reg.isApproved(TREE), "revoked");
        CodeRegistry.Approval memory a = reg.getApproval(TREE);
        assertTrue(a.revoked, "flag");
        assertEq(a.revokeReason, "leaks data", "reason");
    }

    function testOwnerRevokes() public {
        approveAsOwner(0);
        vm.prank(owner);
        reg.revoke(TREE, "superseded");
        assertTrue(!reg.isApproved(TREE), "revoked");
    }

    function testStrangerCannotRevoke() public {
        approveAsOwner(0);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(CodeRegistry.NotOwnerOrGuardian.selector, stranger));
        reg.revoke(TREE, "no");
        assertTrue(reg.isApproved(TREE), "still approved");
    }

    function testRevokeUnknownOrTwiceRefused() public {
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(CodeRegistry.UnknownTree.selector, TREE));
        reg.revoke(TREE, "x");
        approveAsOwner(0);
        vm.prank(guardian);
        reg.revoke(TREE, "x");
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(CodeRegistry.AlreadyRevoked.selector, TREE));
        reg.revoke(TREE, "x");
    }

    function testReapprovalAfterRevocation() public {
        approveAsOwner(0);
        vm.prank(guardian);
        reg.revoke(TREE, "x");
        vm.roll(200);
        approveAsOwner(0);
        assertTrue(reg.isApproved(TREE), "re-approved");
        assertEq(reg.getApproval(TREE).approvedBlock, 200, "new block");
        assertEq(reg.getApproval(TREE).revokeReason, "", "reason cleared");
        assertEq(reg.approvalCount(), 1, "listed once");
    }

    function testGuardianPausesButCannotUnpause() public {
        approveAsOwner(0);
        vm.prank(guardian);
        reg.pause();
        assertTrue(reg.paused(), "paused");
        assertTrue(!reg.isApproved(TREE), "nothing approved while paused");
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, guardian));
        reg.unpause();
        vm.prank(owner);
        reg.unpause();
        assertTrue(!reg.paused(), "unpaused");
        assertTrue(reg.isApproved(TREE), "approved again");
    }

    function testStrangerCannotPause() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(CodeRegistry.NotOwnerOrGuardian.selector, stranger));
        reg.pause();
    }

    function testPauseTwiceAndUnpauseUnpausedRefused() public {
        vm.prank(guardian);
        reg.pause();
        vm.prank(guardian);
        vm.expectRevert(CodeRegistry.AlreadyPaused.selector);
        reg.pause();
        vm.prank(owner);
        reg.unpause();
        vm.prank(owner);
        vm.expectRevert(CodeRegistry.NotPaused.selector);
        reg.unpause();
    }

    function testOnlyOwnerSetsGuardian() public {
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, guardian));
        reg.setGuardian(stranger);
        vm.prank(owner);
        reg.setGuardian(stranger);
        assertEq(reg.guardian(), stranger, "new guardian");
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(CodeRegistry.NotOwnerOrGuardian.selector, guardian));
        reg.pause();
    }
}
