// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {NodeRegistry} from "./NodeRegistry.sol";

/// @title DataRegistry
/// @notice Contributors register the ciphertexts they encrypted to a node, and
/// may withdraw them; nodes exclude withdrawn data from later runs.
///
/// Security argument: the record names the ciphertext by its sha256, so a node
/// can verify what it fetched from `uri`. Only the contributor can withdraw,
/// and a withdrawal is permanent (the same ciphertext cannot be registered
/// again), so nobody can silently re-include data its owner took back.
contract DataRegistry {
    struct Contribution {
        bytes32 sha256;
        string uri;
        uint64 size;
        bytes32 nodeId;
        address contributor;
        bool withdrawn;
        uint64 contributedBlock;
    }

    NodeRegistry public immutable nodes;

    mapping(bytes32 => Contribution) private _contributions;
    mapping(bytes32 => bytes32[]) private _byNode;

    event Contributed(
        bytes32 indexed ciphertextSha256, bytes32 indexed nodeId, address indexed contributor, string uri, uint64 size
    );
    event Withdrawn(bytes32 indexed ciphertextSha256, bytes32 indexed nodeId, address indexed contributor);

    error InvalidContribution();
    error UnknownNode(bytes32 nodeId);
    error AlreadyContributed(bytes32 ciphertextSha256);
    error UnknownContribution(bytes32 ciphertextSha256);
    error NotContributor(bytes32 ciphertextSha256, address caller);
    error AlreadyWithdrawn(bytes32 ciphertextSha256);

    constructor(NodeRegistry nodes_) {
        nodes = nodes_;
    }

    function contribute(bytes32 ciphertextSha256, string calldata uri, uint64 size, bytes32 nodeId) external {
        if (ciphertextSha256 == bytes32(0) || size == 0) revert InvalidContribution();
        if (!nodes.isRegistered(nodeId)) revert UnknownNode(nodeId);
        if (_contributions[ciphertextSha256].contributor != address(0)) revert AlreadyContributed(ciphertextSha256);
        _contributions[ciphertextSha256] =
            Contribution(ciphertextSha256, uri, size, nodeId, msg.sender, false, uint64(block.number));
        _byNode[nodeId].push(ciphertextSha256);
        emit Contributed(ciphertextSha256, nodeId, msg.sender, uri, size);
    }

    function withdraw(bytes32 ciphertextSha256) external {
        Contribution storage c = _contributions[ciphertextSha256];
        if (c.contributor == address(0)) revert UnknownContribution(ciphertextSha256);
        if (c.contributor != msg.sender) revert NotContributor(ciphertextSha256, msg.sender);
        if (c.withdrawn) revert AlreadyWithdrawn(ciphertextSha256);
        c.withdrawn = true;
        emit Withdrawn(ciphertextSha256, c.nodeId, msg.sender);
    }

    /// The record; `contributor == address(0)` means unknown.
    function getContribution(bytes32 ciphertextSha256) external view returns (Contribution memory) {
        return _contributions[ciphertextSha256];
    }

    function contributionCount(bytes32 nodeId) external view returns (uint256) {
        return _byNode[nodeId].length;
    }

    function contributionAt(bytes32 nodeId, uint256 index) external view returns (Contribution memory) {
        return _contributions[_byNode[nodeId][index]];
    }
}
