// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title NodeRegistry
/// @notice The compute nodes the collective trusts, and the on-chain witness of
/// each node's transparency log.
///
/// Security argument:
/// - Only the owner (the TimelockController, i.e. a DAO vote) registers a node
///   and its keys: contributors encrypt to the recipient published here, and
///   auditors verify the log with the public key published here.
/// - Only a node's operator anchors its log checkpoints, and the anchored log
///   size never shrinks; a second root for an already anchored size is
///   refused. Anchors are public and ordered, so an operator cannot show
///   auditors two different histories without one of them contradicting the
///   chain.
contract NodeRegistry is Ownable {
    struct Node {
        string encryptionRecipient;
        string logPublicKey;
        string endpoint;
        address operator;
        uint64 registeredBlock;
    }

    struct Anchor {
        uint64 size;
        bytes32 root;
        uint64 blockNumber;
        uint64 timestamp;
    }

    mapping(bytes32 => Node) private _nodes;
    mapping(bytes32 => Anchor[]) private _anchors;
    bytes32[] private _nodeIds;

    event NodeRegistered(
        bytes32 indexed nodeId, address indexed operator, string encryptionRecipient, string logPublicKey, string endpoint
    );
    event CheckpointAnchored(bytes32 indexed nodeId, uint64 size, bytes32 root, uint256 index);

    error InvalidNode();
    error UnknownNode(bytes32 nodeId);
    error NotOperator(bytes32 nodeId, address caller);
    error CheckpointShrinks(uint64 anchoredSize, uint64 size);
    error CheckpointForks(uint64 size, bytes32 anchoredRoot, bytes32 root);
    error NoAnchor(bytes32 nodeId);

    constructor(address owner_) Ownable(owner_) {}

    /// Register a node, or replace its record (key rotation, new operator).
    /// Its anchors are kept: the log history does not restart.
    function registerNode(
        bytes32 nodeId,
        string calldata encryptionRecipient,
        string calldata logPublicKey,
        string calldata endpoint,
        address operator
    ) external onlyOwner {
        if (nodeId == bytes32(0) || operator == address(0)) revert InvalidNode();
        Node storage n = _nodes[nodeId];
        if (n.registeredBlock == 0) _nodeIds.push(nodeId);
        n.encryptionRecipient = encryptionRecipient;
        n.logPublicKey = logPublicKey;
        n.endpoint = endpoint;
        n.operator = operator;
        n.registeredBlock = uint64(block.number);
        emit NodeRegistered(nodeId, operator, encryptionRecipient, logPublicKey, endpoint);
    }

    /// Witness a checkpoint of the node's log. Re-anchoring the latest
    /// checkpoint is a no-op, so an operator may retry after a lost receipt.
    function anchorCheckpoint(bytes32 nodeId, uint64 size, bytes32 root) external {
        Node storage n = _nodes[nodeId];
        if (n.registeredBlock == 0) revert UnknownNode(nodeId);
        if (msg.sender != n.operator) revert NotOperator(nodeId, msg.sender);
        Anchor[] storage list = _anchors[nodeId];
        if (list.length > 0) {
            Anchor storage last = list[list.length - 1];
            if (size < last.size) revert CheckpointShrinks(last.size, size);
            if (size == last.size) {
                if (root != last.root) revert CheckpointForks(size, last.root, root);
                return;
            }
        }
        list.push(Anchor(size, root, uint64(block.number), uint64(block.timestamp)));
        emit CheckpointAnchored(nodeId, size, root, list.length - 1);
    }

    function isRegistered(bytes32 nodeId) external view returns (bool) {
        return _nodes[nodeId].registeredBlock != 0;
    }

    /// The node record; `registeredBlock == 0` means unknown.
    function getNode(bytes32 nodeId) external view returns (Node memory) {
        return _nodes[nodeId];
    }

    function nodeCount() external view returns (uint256) {
        return _nodeIds.length;
    }

    function nodeIdAt(uint256 index) external view returns (bytes32) {
        return _nodeIds[index];
    }

    function anchorCount(bytes32 nodeId) external view returns (uint256) {
        return _anchors[nodeId].length;
    }

    function anchorAt(bytes32 nodeId, uint256 index) external view returns (Anchor memory) {
        return _anchors[nodeId][index];
    }

    function latestAnchor(bytes32 nodeId) external view returns (Anchor memory) {
        Anchor[] storage list = _anchors[nodeId];
        if (list.length == 0) revert NoAnchor(nodeId);
        return list[list.length - 1];
    }
}
