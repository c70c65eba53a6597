// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title PackedState
/// @notice Bit layout of the token's global slot: the flags every balance change checks and the
/// supply of the newest epoch earned in, so an earn reads and writes one global slot.
/// @dev [0,128) epochSupply | [128,160) epoch | bit 160 paused | bit 161 transfersEnabled.
library PackedState {
    uint256 private constant _EPOCH_SHIFT = 128;
    uint256 private constant _PAUSED_BIT = 1 << 160;
    uint256 private constant _TRANSFERS_BIT = 1 << 161;
    uint256 private constant _U32 = (1 << 32) - 1;
    uint256 private constant _U128 = (1 << 128) - 1;

    /// @notice Unexpired points earned in `epoch(packed)`.
    function epochSupply(uint256 packed) internal pure returns (uint256) {
        return packed & _U128;
    }

    /// @notice The epoch whose supply this slot holds.
    function supplyEpoch(uint256 packed) internal pure returns (uint256) {
        return (packed >> _EPOCH_SHIFT) & _U32;
    }

    /// @notice `packed` holding `supply` (< 2^128) for `supplyEpoch` (< 2^32); flags kept.
    function withEpochSupply(uint256 packed, uint256 supplyEpoch, uint256 supply) internal pure returns (uint256) {
        return (packed & ~((_U32 << _EPOCH_SHIFT) | _U128)) | (supplyEpoch << _EPOCH_SHIFT) | supply;
    }

    /// @notice Whether balance changes are paused.
    function paused(uint256 packed) internal pure returns (bool) {
        return packed & _PAUSED_BIT != 0;
    }

    /// @notice `packed` with the pause flag set to `on`.
    function withPaused(uint256 packed, bool on) internal pure returns (uint256) {
        return on ? packed | _PAUSED_BIT : packed & ~_PAUSED_BIT;
    }

    /// @notice Whether member-to-member transfers are on.
    function transfersEnabled(uint256 packed) internal pure returns (bool) {
        return packed & _TRANSFERS_BIT != 0;
    }

    /// @notice `packed` with the transfer flag set to `on`.
    function withTransfersEnabled(uint256 packed, bool on) internal pure returns (uint256) {
        return on ? packed | _TRANSFERS_BIT : packed & ~_TRANSFERS_BIT;
    }
}
