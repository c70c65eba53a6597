// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ILoyaltyPoints
/// @notice A loyalty points token: partner brands (issuers) earn points to members within budgets,
/// members' points expire by epoch (oldest spent first), and points are redeemed only with the
/// member's EIP-712 consent. Every balance change also emits the ERC-20 `Transfer` event.
interface ILoyaltyPoints {
    /// @notice A member's points that expire together.
    /// @param expiresAt Unix time from which these points no longer count.
    /// @param amount Points in the lot.
    struct Lot {
        uint256 expiresAt;
        uint256 amount;
    }

    // ----------------------------------------------------------------------------------- events

    /// @notice `issuer` earned `amount` points to `member` under `ref`; they expire at `expiresAt`.
    event Earned(address indexed member, address indexed issuer, uint256 amount, uint256 ref, uint256 expiresAt);

    /// @notice `issuer` earned points to `members` members in one batch under `batchRef`.
    /// @dev Each member's points show in that transaction's `Transfer` events from address zero.
    event BatchEarned(
        address indexed issuer, uint256 indexed batchRef, uint256 members, uint256 amount, uint256 expiresAt
    );

    /// @notice `amount` of `member`'s points were burned for reward `rewardId`, relayed by `issuer`.
    event Redeemed(
        address indexed member, address indexed issuer, uint256 amount, uint256 indexed rewardId, uint256 ref
    );

    /// @notice `amount` of `member`'s points earned in `epoch` expired and were burned.
    event Expired(address indexed member, uint256 indexed epoch, uint256 amount);

    /// @notice `issuer` may now earn at most `budget` more points.
    event IssueBudgetSet(address indexed issuer, uint256 budget);

    /// @notice Member-to-member transfers were switched on or off.
    event TransfersEnabledSet(bool enabled);

    /// @notice `account` paused every balance change.
    event Paused(address account);

    /// @notice `account` lifted the pause.
    event Unpaused(address account);

    // ----------------------------------------------------------------------------------- errors

    /// @notice `member` is not a valid member address (the zero address).
    error LoyaltyInvalidMember(address member);

    /// @notice `amount` is zero or larger than a lot can hold (2^96 - 1).
    error LoyaltyInvalidAmount(address member, uint256 amount);

    /// @notice `members` and `amounts` differ in length.
    error LoyaltyArrayLengthMismatch(uint256 members, uint256 amounts);

    /// @notice A batch holds `size` entries; it must hold between 1 and `max`.
    error LoyaltyInvalidBatchSize(uint256 size, uint256 max);

    /// @notice `issuer` already used `ref`, or used refs so far past it that it fell out of the window.
    error LoyaltyRefUsed(address issuer, uint256 ref);

    /// @notice Refs are sequence numbers below 2^64.
    error LoyaltyRefOutOfRange(uint256 ref);

    /// @notice `issuer` may earn only `budget` more points, not `amount`.
    error LoyaltyBudgetExceeded(address issuer, uint256 budget, uint256 amount);

    /// @notice `account` lacks `role`.
    error LoyaltyMissingRole(address account, bytes32 role);

    /// @notice `member` holds `balance` spendable points, fewer than `needed`.
    error LoyaltyInsufficientBalance(address member, uint256 balance, uint256 needed);

    /// @notice The consent expired at `deadline`; it is now `timestamp`.
    error LoyaltyExpiredSignature(uint256 deadline, uint256 timestamp);

    /// @notice The consent was signed by `signer`, not by `member`.
    error LoyaltyInvalidSigner(address signer, address member);

    /// @notice The consent was signed by `member` for nonce `nonce`, which is already used.
    error LoyaltyNonceUsed(address member, uint256 nonce);

    /// @notice Member-to-member transfers are switched off.
    error LoyaltyTransfersDisabled(address from, address to);

    /// @notice Balance changes are paused.
    error LoyaltyPaused();

    /// @notice The pause cannot be set to the state it is already in (`paused`).
    error LoyaltyPauseUnchanged(bool paused);

    /// @notice `admin` cannot administer the token (the zero address).
    error LoyaltyInvalidAdmin(address admin);

    /// @notice The deploy parameters are out of range: epochs must last 1 to 2^32 - 1 seconds and
    /// points stay valid for 1 to 64 epochs.
    error LoyaltyInvalidExpiryConfig(uint256 epochLength, uint256 validityEpochs);

    // ------------------------------------------------------------------------------ issuing

    /// @notice Earn `amount` points to `member` from the caller's budget. `ref` works once, so a
    /// retried transaction can never issue twice.
    /// @dev Refs are the issuer's sequence numbers (below 2^64), shared by earn and earnBatch.
    /// They may be used out of order within `REF_WINDOW` of the highest used; refs left further
    /// behind can no longer be used.
    /// @dev Requires ISSUER_ROLE and an unused `ref`; emits `Transfer` and `Earned`.
    function earn(address member, uint256 amount, uint256 ref) external;

    /// @notice Earn `amounts[i]` points to `members[i]` for every i, all under one `batchRef`.
    /// @dev Requires ISSUER_ROLE; 1 to `MAX_BATCH_SIZE` entries; emits a `Transfer` per member
    /// and one `BatchEarned`.
    function earnBatch(address[] calldata members, uint256[] calldata amounts, uint256 batchRef) external;

    /// @notice Burn `amount` of `member`'s points (oldest first) for reward `rewardId`, with the
    /// member's EIP-712 `signature` over `Redeem(member, issuer, amount, rewardId, ref, nonce, deadline)`:
    /// 65 bytes, or 64 (EIP-2098 compact); a smart-contract wallet consents through ERC-1271
    /// (asked only when the signature recovers to no matching ECDSA signer, with at most
    /// `CONSENT_WALLET_GAS` gas).
    /// @dev Requires ISSUER_ROLE (the caller is the `issuer` signed for); uses the member's nonce,
    /// which makes each consent work once. `ref` is the issuer's label for the redemption, signed
    /// and logged in `Redeemed` but not spent from the issuer's ref window, so a consent stays
    /// valid until its deadline whatever the issuer earns meanwhile.
    function redeem(
        address member,
        uint256 amount,
        uint256 rewardId,
        uint256 ref,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Burn the expired points of each of `members`. Anyone may call it.
    /// @return swept Points burned in total.
    function expire(address[] calldata members) external returns (uint256 swept);

    // ------------------------------------------------------------------------------ admin

    /// @notice Set how many more points `issuer` may earn. Admin only; `issuer` needs ISSUER_ROLE.
    function setIssueBudget(address issuer, uint256 budget) external;

    /// @notice Switch member-to-member transfers on or off. Admin only.
    function setTransfersEnabled(bool enabled) external;

    /// @notice Stop every balance change. PAUSER_ROLE only.
    function pause() external;

    /// @notice Lift the pause. PAUSER_ROLE only.
    function unpause() external;

    // ------------------------------------------------------------------------------ views

    /// @notice How many more points `issuer` may earn.
    function issueBudget(address issuer) external view returns (uint256);

    /// @notice Whether `ref` can no longer be used by `issuer` (used, or left behind the window).
    function isRefUsed(address issuer, uint256 ref) external view returns (bool);

    /// @notice `member`'s unexpired points by expiry date, oldest first.
    function lotsOf(address member) external view returns (Lot[] memory lots);

    /// @notice `member`'s points that have expired but not been swept yet.
    function expiredBalanceOf(address member) external view returns (uint256);

    /// @notice The epoch now (epoch 0 starts at deployment).
    function currentEpoch() external view returns (uint256);

    /// @notice Unix time from which points earned in `epoch` no longer count.
    function expiryOf(uint256 epoch) external view returns (uint256);

    /// @notice Unix time at which epoch 0 began.
    function startTime() external view returns (uint256);

    /// @notice Length of an epoch in seconds.
    function epochLength() external view returns (uint256);

    /// @notice For how many epochs (the one earned in included) points stay valid.
    function validityEpochs() external view returns (uint256);

    /// @notice Whether member-to-member transfers are on.
    function transfersEnabled() external view returns (bool);

    /// @notice Whether balance changes are paused.
    function paused() external view returns (bool);
}
