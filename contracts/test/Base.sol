// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// The few forge cheatcodes these tests use. forge-std is not available from
/// the registries this project builds from, so this is a local interface to
/// the standard cheatcode contract.
interface Vm {
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function roll(uint256 newHeight) external;
    function warp(uint256 newTimestamp) external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert() external;
}

/// Minimal test base: the cheatcode handle and assertions that revert with a
/// message (a revert is what makes a forge test fail).
abstract contract Base {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function assertTrue(bool cond, string memory what) internal pure {
        require(cond, what);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        require(a == b, what);
    }

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        require(a == b, what);
    }

    function assertEq(address a, address b, string memory what) internal pure {
        require(a == b, what);
    }

    function assertEq(string memory a, string memory b, string memory what) internal pure {
        require(keccak256(bytes(a)) == keccak256(bytes(b)), what);
    }
}
