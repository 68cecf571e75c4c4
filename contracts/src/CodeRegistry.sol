// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title CodeRegistry
/// @notice Which code trees the collective approved to run on its data, and who
/// may receive the outputs.
///
/// Security argument:
/// - Only the owner (the TimelockController, i.e. a passed and queued DAO
///   proposal) can approve. Approvals are keyed by the sha256 git tree id and
///   carry the sha1 tree id, so a node can check both the id in the commit and
///   the id recomputed from the files on disk.
/// - The guardian is an emergency brake: it may revoke an approval or pause
///   the registry, never approve and never unpause, so a compromised guardian
///   can stop work but cannot make the node run anything new.
/// - `isApproved` fails closed: unknown, revoked, expired, or paused all read
///   as "not approved".
/// - `getApproval` keeps the block the approval was made in, so an auditor can
///   check that an approval existed before a node acted on it.
contract CodeRegistry is Ownable {
    /// One approval of a tree. `expiresAt` is a unix time in seconds; 0 means
    /// no expiry. `approvedBlock`/`approvedAt` record when it was approved.
    struct Approval {
        bytes32 treeSha256;
        bytes20 treeSha1;
        string[] recipients;
        uint64 expiresAt;
        string uri;
        uint64 approvedBlock;
        uint64 approvedAt;
        bool revoked;
        string revokeReason;
    }

    address public guardian;
    bool public paused;

    mapping(bytes32 => Approval) private _approvals;
    bytes32[] private _trees;

    event Approved(
        bytes32 indexed treeSha256, bytes20 treeSha1, string[] recipients, uint64 expiresAt, string uri
    );
    event Revoked(bytes32 indexed treeSha256, address indexed by, string reason);
    event Paused(address indexed by);
    event Unpaused(address indexed by);
    event GuardianChanged(address indexed previousGuardian, address indexed newGuardian);

    error NotOwnerOrGuardian(address caller);
    error InvalidTreeId();
    error AlreadyExpired(uint64 expiresAt, uint256 nowTs);
    error UnknownTree(bytes32 treeSha256);
    error AlreadyRevoked(bytes32 treeSha256);
    error AlreadyPaused();
    error NotPaused();

    modifier onlyOwnerOrGuardian() {
        if (msg.sender != owner() && msg.sender != guardian) revert NotOwnerOrGuardian(msg.sender);
        _;
    }

    constructor(address owner_, address guardian_) Ownable(owner_) {
        guardian = guardian_;
        emit GuardianChanged(address(0), guardian_);
    }

    /// Approve (or re-approve, replacing the previous record) a tree.
    function approve(
        bytes32 treeSha256,
        bytes20 treeSha1,
        string[] calldata recipients,
        uint64 expiresAt,
        string calldata uri
    ) external onlyOwner {
        if (treeSha256 == bytes32(0) || treeSha1 == bytes20(0)) revert InvalidTreeId();
        if (expiresAt != 0 && expiresAt <= block.timestamp) revert AlreadyExpired(expiresAt, block.timestamp);
        Approval storage a = _approvals[treeSha256];
        if (a.approvedBlock == 0) _trees.push(treeSha256);
        a.treeSha256 = treeSha256;
        a.treeSha1 = treeSha1;
        delete a.recipients;
        for (uint256 i = 0; i < recipients.length; i++) {
            a.recipients.push(recipients[i]);
        }
        a.expiresAt = expiresAt;
        a.uri = uri;
        a.approvedBlock = uint64(block.number);
        a.approvedAt = uint64(block.timestamp);
        a.revoked = false;
        a.revokeReason = "";
        emit Approved(treeSha256, treeSha1, recipients, expiresAt, uri);
    }

    /// Revoke an approval; nodes stop what it covers.
    function revoke(bytes32 treeSha256, string calldata reason) external onlyOwnerOrGuardian {
        Approval storage a = _approvals[treeSha256];
        if (a.approvedBlock == 0) revert UnknownTree(treeSha256);
        if (a.revoked) revert AlreadyRevoked(treeSha256);
        a.revoked = true;
        a.revokeReason = reason;
        emit Revoked(treeSha256, msg.sender, reason);
    }

    /// Stop every node from acting on any approval.
    function pause() external onlyOwnerOrGuardian {
        if (paused) revert AlreadyPaused();
        paused = true;
        emit Paused(msg.sender);
    }

    /// Only the DAO may resume: the guardian can stop, never start.
    function unpause() external onlyOwner {
        if (!paused) revert NotPaused();
        paused = false;
        emit Unpaused(msg.sender);
    }

    function setGuardian(address newGuardian) external onlyOwner {
        emit GuardianChanged(guardian, newGuardian);
        guardian = newGuardian;
    }

    /// True only for a known, unrevoked, unexpired approval while not paused.
    function isApproved(bytes32 treeSha256) external view returns (bool) {
        Approval storage a = _approvals[treeSha256];
        return !paused && a.approvedBlock != 0 && !a.revoked && (a.expiresAt == 0 || block.timestamp < a.expiresAt);
    }

    /// The full record; `approvedBlock == 0` means the tree was never approved.
    function getApproval(bytes32 treeSha256) external view returns (Approval memory) {
        return _approvals[treeSha256];
    }

    function approvalCount() external view returns (uint256) {
        return _trees.length;
    }

    function treeAt(uint256 index) external view returns (bytes32) {
        return _trees[index];
    }
}
