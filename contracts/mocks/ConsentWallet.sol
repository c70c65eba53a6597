// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title ConsentWallet (tests only)
/// @notice A minimal smart-contract wallet: it consents (ERC-1271) to what its owner's key
/// signed, and can be told to refuse everything.
contract ConsentWallet is IERC1271 {
    address public immutable owner;
    bool public refusing;

    constructor(address owner_) {
        owner = owner_;
    }

    function setRefusing(bool refusing_) external {
        refusing = refusing_;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer,,) = ECDSA.tryRecover(hash, signature);
        return !refusing && signer == owner ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
    }
}
