// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title PackedIssuer
/// @notice Bit layout of an issuer's slot: its remaining budget and its ref window, so an earn
/// reads and writes one slot for both (a struct copy would write it field by field).
/// @dev [0,128) budget | [128,192) refBase | [192,256) refBits (bit i: ref `refBase + i` used).
library PackedIssuer {
    uint256 internal constant REF_WINDOW = 64;
    uint256 private constant _BASE_SHIFT = 128;
    uint256 private constant _BITS_SHIFT = 192;
    uint256 private constant _U64 = (1 << 64) - 1;
    uint256 private constant _U128 = (1 << 128) - 1;

    /// @notice Points the issuer may still earn.
    function budget(uint256 packed) internal pure returns (uint256) {
        return packed & _U128;
    }

    /// @notice `packed` with its budget replaced by `newBudget` (< 2^128).
    function withBudget(uint256 packed, uint256 newBudget) internal pure returns (uint256) {
        return (packed & ~_U128) | newBudget;
    }

    /// @notice Lowest ref of the window; refs below it count as used.
    function refBase(uint256 packed) internal pure returns (uint256) {
        return (packed >> _BASE_SHIFT) & _U64;
    }

    /// @notice Whether `ref` can no longer be used.
    function isRefUsed(uint256 packed, uint256 ref) internal pure returns (bool) {
        uint256 base = refBase(packed);
        if (ref < base) return true;
        if (ref - base >= REF_WINDOW) return false;
        return (packed >> (_BITS_SHIFT + ref - base)) & 1 != 0;
    }

    /// @notice `packed` with `ref` marked used, or `ok == false` when it already was. A ref past
    /// the window slides the window up to it; refs left below can no longer be used.
    /// @dev Callers keep `ref` < 2^64.
    function withRefUsed(uint256 packed, uint256 ref) internal pure returns (uint256 updated, bool ok) {
        uint256 base = refBase(packed);
        if (ref < base) return (packed, false);
        uint256 bits = packed >> _BITS_SHIFT;
        uint256 offset = ref - base;
        if (offset >= REF_WINDOW) {
            uint256 shift = offset - (REF_WINDOW - 1);
            bits = shift >= REF_WINDOW ? 0 : bits >> shift;
            base = ref - (REF_WINDOW - 1);
            offset = REF_WINDOW - 1;
        }
        if ((bits >> offset) & 1 != 0) return (packed, false);
        bits |= 1 << offset;
        updated = (packed & _U128) | (base << _BASE_SHIFT) | (bits << _BITS_SHIFT);
        ok = true;
    }
}
