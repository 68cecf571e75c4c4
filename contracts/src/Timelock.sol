// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

// The stock OpenZeppelin TimelockController, imported so forge emits its
// artifact next to ours (chain/ deploys it from contracts/artifacts/).
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
