// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title CollectiveToken
/// @notice The collective's governance token. Voting power is checkpointed per
/// block (the default ERC-6372 block-number clock), so the Governor counts the
/// votes held when a proposal's snapshot block was mined: buying tokens after a
/// proposal is made does not change its outcome.
/// @dev The whole supply is minted once, to `holder`; there is no mint function,
/// so no key can inflate voting power later.
contract CollectiveToken is ERC20, ERC20Votes {
    constructor(string memory name_, string memory symbol_, address holder, uint256 supply)
        ERC20(name_, symbol_)
        EIP712(name_, "1")
    {
        _mint(holder, supply);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }
}
