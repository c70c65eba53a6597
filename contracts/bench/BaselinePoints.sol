// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";

/// @title BaselinePoints
/// @notice The gas benchmark's yardstick: a plain OpenZeppelin mintable, burnable ERC-20 with the
/// same kind of batch mint as `LoyaltyPoints.earnBatch`. Not deployed by the product.
contract BaselinePoints is ERC20, ERC20Burnable, Ownable {
    constructor(address owner) ERC20("Baseline Points", "BASE") Ownable(owner) {}

    /// @notice Mint `amount` to `to`.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /// @notice Mint `amounts[i]` to `recipients[i]` for every i.
    function mintBatch(address[] calldata recipients, uint256[] calldata amounts) external onlyOwner {
        for (uint256 i; i < recipients.length; ++i) {
            _mint(recipients[i], amounts[i]);
        }
    }
}
