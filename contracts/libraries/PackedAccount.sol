// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title PackedAccount
/// @notice Bit layout of a member's storage. Packing is what keeps an earn to a member at one
/// storage write: a slot going zero -> nonzero costs ~22.1k gas, so everything an earn or a
/// redemption touches lives in the member's head slot.
/// @dev Head slot: [0,96) newest lot's amount | [96,128) its epoch | [128,192) ring mask (bit p set
/// when ring slot p holds a lot) | [192,256) nonce.
/// Ring slot (older lots, at `epoch % validityEpochs`): [0,96) amount | [96,128) epoch.
library PackedAccount {
    uint256 internal constant MAX_AMOUNT = (1 << 96) - 1;
    uint256 private constant _EPOCH_SHIFT = 96;
    uint256 private constant _MASK_SHIFT = 128;
    uint256 private constant _NONCE_SHIFT = 192;
    uint256 private constant _LOT_BITS = (1 << 128) - 1;
    uint256 private constant _U32 = (1 << 32) - 1;
    uint256 private constant _U64 = (1 << 64) - 1;

    /// @notice Points in the lot held by `packed` (a head or a ring slot).
    function amount(uint256 packed) internal pure returns (uint256) {
        return packed & MAX_AMOUNT;
    }

    /// @notice Epoch of the lot held by `packed` (a head or a ring slot).
    function epoch(uint256 packed) internal pure returns (uint256) {
        return (packed >> _EPOCH_SHIFT) & _U32;
    }

    /// @notice `packed` with its lot replaced by (`lotEpoch`, `lotAmount`); other fields kept.
    /// @dev Callers keep `lotAmount` <= MAX_AMOUNT and `lotEpoch` < 2^32.
    function withLot(uint256 packed, uint256 lotEpoch, uint256 lotAmount) internal pure returns (uint256) {
        return (packed & ~_LOT_BITS) | (lotEpoch << _EPOCH_SHIFT) | lotAmount;
    }

    /// @notice Which ring slots of the head's account hold a lot.
    function ringMask(uint256 head) internal pure returns (uint256) {
        return (head >> _MASK_SHIFT) & _U64;
    }

    /// @notice `head` with its ring mask replaced by `mask` (< 2^64).
    function withRingMask(uint256 head, uint256 mask) internal pure returns (uint256) {
        return (head & ~(_U64 << _MASK_SHIFT)) | (mask << _MASK_SHIFT);
    }

    /// @notice The member's next EIP-712 nonce (shared by `redeem` and `permit`).
    function nonce(uint256 head) internal pure returns (uint256) {
        return head >> _NONCE_SHIFT;
    }

    /// @notice `head` with its nonce advanced by one.
    function withNextNonce(uint256 head) internal pure returns (uint256) {
        // A 64-bit nonce cannot wrap: that would take 2^64 signed consents by one member.
        unchecked {
            return head + (1 << _NONCE_SHIFT);
        }
    }
}
