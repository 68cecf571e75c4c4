// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Base} from "./Base.sol";
import {CollectiveToken} from "../src/CollectiveToken.sol";
import {CollectiveGovernor} from "../src/CollectiveGovernor.sol";
import {CodeRegistry} from "../src/CodeRegistry.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// The whole DAO path: token holders propose an approval, vote, queue it in
/// the timelock, and execute it; only then is the tree approved.
contract GovernanceTest is Base {
    CollectiveToken token;
    TimelockController timelock;
    CollectiveGovernor governor;
    CodeRegistry code;
    NodeRegistry nodes;

    address voterA = address(0xA);
    address voterB = address(0xB);
    address guardian = address(0x6A4D);
    uint256 constant MIN_DELAY = 60;
    bytes32 constant TREE = keccak256("tree");
    bytes20 constant TREE1 = bytes20(keccak256("tree1"));

    function setUp() public {
        vm.warp(1_000_000);
        vm.roll(10);
        token = new CollectiveToken("Collective", "CLV", address(this), 1_000_000 ether);
        address[] memory none = new address[](0);
        address[] memory anyone = new address[](1);
        anyone[0] = address(0);
        timelock = new TimelockController(MIN_DELAY, none, anyone, address(this));
        governor = new CollectiveGovernor(token, timelock, 1, 10, 0, 4);
        timelock.grantRole(timelock.PROPOSER_ROLE(), address(governor));
        timelock.grantRole(timelock.CANCELLER_ROLE(), address(governor));
        timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), address(this));
        code = new CodeRegistry(address(timelock), guardian);
        nodes = new NodeRegistry(address(timelock));

        require(token.transfer(voterA, 600_000 ether));
        require(token.transfer(voterB, 100_000 ether));
        vm.prank(voterA);
        token.delegate(voterA);
        vm.prank(voterB);
        token.delegate(voterB);
        vm.roll(11);
    }

    function approvalCall(uint64 expiresAt)
        internal
        view
        returns (address[] memory targets, uint256[] memory values, bytes[] memory calldatas)
    {
        string[] memory recipients = new string[](1);
        recipients[0] = "age1recipient";
        targets = new address[](1);
        targets[0] = address(code);
        values = new uint256[](1);
        calldatas = new bytes[](1);
        calldatas[0] = abi.encodeCall(CodeRegistry.approve, (TREE, TREE1, recipients, expiresAt, "pr/1"));
    }

    function testTokenUsesBlockNumberClock() public view {
        assertEq(token.clock(), block.number, "clock");
        assertEq(token.CLOCK_MODE(), "mode=blocknumber&from=default", "mode");
        assertEq(token.getVotes(voterA), 600_000 ether, "votes");
    }

    function testDirectApprovalRefused() public {
        (,, bytes[] memory calldatas) = approvalCall(0);
        vm.prank(voterA);
        (bool ok,) = address(code).call(calldatas[0]);
        assertTrue(!ok, "only the timelock approves");
    }

    function testProposeVoteQueueExecuteApproves() public {
        (address[] memory t, uint256[] memory v, bytes[] memory c) = approvalCall(0);
        string memory description = "Approve tree for PR 1";
        bytes32 descHash = keccak256(bytes(description));

        vm.prank(voterB);
        uint256 id = governor.propose(t, v, c, description);
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Pending), "pending");

        vm.roll(block.number + 2);
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Active), "active");
        vm.prank(voterA);
        governor.castVote(id, 1);
        vm.prank(voterB);
        governor.castVote(id, 0);
        (uint256 against, uint256 forVotes,) = governor.proposalVotes(id);
        assertEq(forVotes, 600_000 ether, "for");
        assertEq(against, 100_000 ether, "against");

        // Queueing before the vote ends is refused.
        vm.expectRevert();
        governor.queue(t, v, c, descHash);

        vm.roll(block.number + 11);
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Succeeded), "succeeded");
        governor.queue(t, v, c, descHash);
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Queued), "queued");

        // The timelock delay holds.
        vm.expectRevert();
        governor.execute(t, v, c, descHash);
        assertTrue(!code.isApproved(TREE), "not approved while queued");

        vm.warp(block.timestamp + MIN_DELAY + 1);
        governor.execute(t, v, c, descHash);
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Executed), "executed");
        assertTrue(code.isApproved(TREE), "approved");
        assertEq(code.getApproval(TREE).recipients[0], "age1recipient", "recipient on chain");
    }

    function testDefeatedProposalCannotBeQueued() public {
        (address[] memory t, uint256[] memory v, bytes[] memory c) = approvalCall(0);
        string memory description = "Approve tree, rejected";
        uint256 id = governor.propose(t, v, c, description);
        vm.roll(block.number + 2);
        vm.prank(voterA);
        governor.castVote(id, 0);
        vm.prank(voterB);
        governor.castVote(id, 1);
        vm.roll(block.number + 11);
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Defeated), "defeated");
        vm.expectRevert();
        governor.queue(t, v, c, keccak256(bytes(description)));
        assertTrue(!code.isApproved(TREE), "not approved");
    }

    function testQuorumNotReachedIsDefeated() public {
        // A holder with 0.1% of supply votes alone: below the 4% quorum.
        address small = address(0x5);
        require(token.transfer(small, 1_000 ether));
        vm.prank(small);
        token.delegate(small);
        vm.roll(block.number + 1);
        (address[] memory t, uint256[] memory v, bytes[] memory c) = approvalCall(0);
        uint256 id = governor.propose(t, v, c, "tiny turnout");
        vm.roll(block.number + 2);
        vm.prank(small);
        governor.castVote(id, 1);
        (, uint256 forVotes,) = governor.proposalVotes(id);
        assertEq(forVotes, 1_000 ether, "the small vote counted");
        vm.roll(block.number + 11);
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Defeated), "defeated");
    }

    function testNodeRegisteredThroughGovernance() public {
        bytes32 nodeId = keccak256("node-1");
        address[] memory t = new address[](1);
        t[0] = address(nodes);
        uint256[] memory v = new uint256[](1);
        bytes[] memory c = new bytes[](1);
        c[0] = abi.encodeCall(NodeRegistry.registerNode, (nodeId, "ssh-rsa AAAA", "k", "https://n", address(0x0E7A)));
        string memory description = "Register node 1";
        uint256 id = governor.propose(t, v, c, description);
        vm.roll(block.number + 2);
        vm.prank(voterA);
        governor.castVote(id, 1);
        vm.roll(block.number + 11);
        governor.queue(t, v, c, keccak256(bytes(description)));
        vm.warp(block.timestamp + MIN_DELAY + 1);
        governor.execute(t, v, c, keccak256(bytes(description)));
        assertTrue(nodes.isRegistered(nodeId), "registered");
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        nodes.registerNode(nodeId, "x", "x", "x", address(this));
    }
}
