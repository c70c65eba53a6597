// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestDollar (development chains only)
/// @notice A plain stablecoin for settling between brands on a local chain (`make up` deploys
/// it): 6 decimals like USDC, and its deployer mints at will. On a real network the exchange
/// settles in any ERC-20.
contract TestDollar is ERC20 {
    address public immutable minter;

    error TestDollarNotMinter(address caller);

    constructor() ERC20("Test Dollar", "tUSD") {
        minter = msg.sender;
    }

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mint `amount` to `to`. The deployer only.
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert TestDollarNotMinter(msg.sender);
        _mint(to, amount);
    }
}
