// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ExchangeRate
/// @notice The rate math of an exchange agreement: what points in give out, and whether two
/// agreements between the same programs, one each way, could give a member back what it gave.
library ExchangeRate {
    /// @notice `amountIn * numerator / denominator`, rounded down, plus `bonusOut` for every
    /// whole `bonusEvery` in (none when `bonusEvery` is 0).
    /// @dev Callers bound amountIn below 2^96 and the rate by uint32, so nothing overflows.
    function amountOut(uint256 amountIn, uint256 numerator, uint256 denominator, uint256 bonusEvery, uint256 bonusOut)
        internal
        pure
        returns (uint256 out)
    {
        out = amountIn * numerator / denominator;
        if (bonusEvery != 0) out += (amountIn / bonusEvery) * bonusOut;
    }

    /// @notice The most points out per point in an agreement can give, as a fraction: the rate
    /// plus the bonus's own rate (floors only take away from it).
    /// @dev numerator < 2^97 and denominator < 2^96 for uint32 rates and uint64 bonuses.
    function best(uint256 numerator, uint256 denominator, uint256 bonusEvery, uint256 bonusOut)
        internal
        pure
        returns (uint256, uint256)
    {
        if (bonusEvery == 0) return (numerator, denominator);
        return (numerator * bonusEvery + bonusOut * denominator, denominator * bonusEvery);
    }

    /// @notice Whether going round at best rates `a` then `b` could give back as many points as
    /// went in, or more: (an / ad) * (bn / bd) >= 1.
    /// @dev Products of two `best` parts stay below 2^194.
    function roundTripGains(uint256 an, uint256 ad, uint256 bn, uint256 bd) internal pure returns (bool) {
        return an * bn >= ad * bd;
    }
}
