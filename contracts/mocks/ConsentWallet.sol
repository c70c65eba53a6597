// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title ConsentWallet (tests only)
/// @notice A minimal smart-contract wallet: it consents (ERC-1271) to what its owner's key
/// signed; or, told so, refuses everything, burns all the gas it is given, answers its consent
/// padded to 64 KiB, or spends 400,000 gas before answering (a passkey check in Solidity costs so).
contract ConsentWallet is IERC1271 {
    enum Mode {
        Honest,
        Refusing,
        Greedy,
        Verbose,
        Heavy
    }

    address public immutable owner;
    Mode public mode;

    constructor(address owner_) {
        owner = owner_;
    }

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (mode == Mode.Greedy) {
            while (gasleft() > 0) {}
        }
        if (mode == Mode.Heavy) {
            uint256 until = gasleft() - 400_000;
            while (gasleft() > until) {}
        }
        (address signer,,) = ECDSA.tryRecover(hash, signature);
        bytes4 answer = mode != Mode.Refusing && signer == owner ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
        if (mode == Mode.Verbose) {
            assembly ("memory-safe") {
                mstore(0x00, answer)
                return(0x00, 0x10000)
            }
        }
        return answer;
    }
}
