// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IPointsExchange
/// @notice Members exchange points of one program (a `LoyaltyPoints` token) for points of
/// another at a rate both brands signed, and the brands settle what the exchanges owe in a
/// settlement ERC-20, period by period, netted so n brands settle in at most n - 1 payments.
/// @dev One deployment serves many programs. It burns on the source token through the member's
/// consented `redeem` (the consent names this contract as issuer and the agreement id as
/// `rewardId`) and mints on the target through `earn` (the target's admin grants this contract
/// ISSUER_ROLE and an issue budget: the target's cap on incoming points). Both in one
/// transaction, or neither.
interface IPointsExchange {
    /// @notice A rate agreement, signed (EIP-712) by both brands' agreement signers.
    /// @param source Token members give points in.
    /// @param target Token members get points in.
    /// @param payer Brand that owes `payee` for the points issued on `target`.
    /// @param payee Brand paid for them.
    /// @param rateNumerator With `rateDenominator`: `amountOut = amountIn * num / den` (rounded down).
    /// @param rateDenominator See `rateNumerator`.
    /// @param minimumIn Fewest points in per exchange.
    /// @param stepIn Points in must be a multiple of this (at least 1).
    /// @param maxInPerExchange Most points in per exchange; 0 for no cap.
    /// @param maxInPerMemberPeriod Most points in per member per settlement period; 0 for no cap.
    /// @param bonusEvery Every `bonusEvery` points in earn `bonusOut` more points out; 0 for no bonus.
    /// @param bonusOut See `bonusEvery`.
    /// @param pricePerPoint Settlement-token units the payer owes the payee per point out.
    /// @param creditLimit Most the payer may owe the payee in one period (settlement-token
    /// units): checked against the pair's debt in the period over every agreement between them,
    /// each exchange against its own agreement's limit; 0 for no limit.
    /// @param validFrom Unix time from which exchanges may use it.
    /// @param validUntil Unix time from which they may not.
    /// @param salt Tells apart two agreements with the same terms.
    struct Agreement {
        address source;
        address target;
        address payer;
        address payee;
        uint32 rateNumerator;
        uint32 rateDenominator;
        uint64 minimumIn;
        uint64 stepIn;
        uint64 maxInPerExchange;
        uint64 maxInPerMemberPeriod;
        uint64 bonusEvery;
        uint64 bonusOut;
        uint128 pricePerPoint;
        uint128 creditLimit;
        uint64 validFrom;
        uint64 validUntil;
        uint256 salt;
    }

    /// @notice One member's exchange in a batch; `consent` signs `Redeem(member, this contract,
    /// amountIn, uint256(agreement id), ref, nonce, deadline)` on the source token.
    /// @param ref The exchange's ref: the label of the burn on the source and the ref of the
    /// mint on the target (this contract's ref window there), so a retried exchange mints once.
    struct Order {
        address member;
        uint256 amountIn;
        uint256 ref;
        uint256 deadline;
        bytes consent;
    }

    /// @notice What a closed period's net positions ask one brand to pay another.
    struct Payment {
        address debtor;
        bool settled;
        address creditor;
        uint256 amount;
    }

    // ----------------------------------------------------------------------------------- events

    /// @notice Both brands signed `agreement`, registered as `id` (its EIP-712 digest).
    event AgreementRegistered(bytes32 indexed id, address indexed source, address indexed target, Agreement agreement);

    /// @notice `by` revoked agreement `id`: no exchange may use it from now on.
    event AgreementRevoked(bytes32 indexed id, address by);

    /// @notice `admin`, an admin of `token`, allowed (or stopped) `brand` to be paid for points
    /// exchanged into `token`: only such a brand can be an agreement's payee for it.
    event ProgramBrandSet(address indexed token, address indexed brand, bool allowed, address admin);

    /// @notice `brand` signs agreements with `signer` from now on.
    event AgreementSignerSet(address indexed brand, address signer);

    /// @notice `member` exchanged `amountIn` points for `amountOut` under agreement `id`; the
    /// payer owes `owed` more for it, `debt` in all to the payee in `period`.
    event Exchanged(
        bytes32 indexed id,
        address indexed member,
        uint256 amountIn,
        uint256 amountOut,
        uint256 ref,
        uint256 indexed period,
        uint256 owed,
        uint256 debt
    );

    /// @notice Period `period` closed: its net positions ask for `payments` payments.
    event PeriodClosed(uint256 indexed period, uint256 brands, uint256 payments);

    /// @notice Closing `period` asks `debtor` to pay `creditor` `amount` by `due`.
    event PaymentDue(
        uint256 indexed period, uint256 index, address indexed debtor, address indexed creditor, uint256 amount, uint256 due
    );

    /// @notice The payment was made: through this contract, or off-chain as its creditor confirmed.
    event PaymentSettled(
        uint256 indexed period, uint256 index, address indexed debtor, address indexed creditor, uint256 amount, bool offChain
    );

    // ----------------------------------------------------------------------------------- errors

    /// @notice `account` lacks `role`.
    error ExchangeMissingRole(address account, bytes32 role);

    /// @notice `admin` cannot administer the exchange (the zero address).
    error ExchangeInvalidAdmin(address admin);

    /// @notice Settlement periods must last 1 to 2^32 - 1 seconds, and the payment window at most 2^32 - 1.
    error ExchangeInvalidPeriods(uint256 periodLength, uint256 paymentWindow);

    /// @notice `token` is not a settlement token (the zero address).
    error ExchangeInvalidSettlementToken(address token);

    /// @notice The agreement's programs must be two different, non-zero tokens.
    error ExchangeInvalidPrograms(address source, address target);

    /// @notice The agreement's brands must be two different, non-zero addresses.
    error ExchangeInvalidBrands(address payer, address payee);

    /// @notice The rate's numerator and denominator must both be positive.
    error ExchangeInvalidRate(uint256 numerator, uint256 denominator);

    /// @notice The step must be positive, and the caps at least the minimum (or 0 for none).
    error ExchangeInvalidAmounts(uint256 minimumIn, uint256 stepIn, uint256 maxInPerExchange, uint256 maxInPerMemberPeriod);

    /// @notice A bonus needs both `bonusEvery` and `bonusOut`, or neither.
    error ExchangeInvalidBonus(uint256 bonusEvery, uint256 bonusOut);

    /// @notice The agreement must end after it starts, and after now (`timestamp`).
    error ExchangeInvalidValidity(uint256 validFrom, uint256 validUntil, uint256 timestamp);

    /// @notice The signature recovers to `signer`, not to `brand`'s agreement signer `expected`.
    error ExchangeInvalidSignature(address brand, address signer, address expected);

    /// @notice Agreement `id` is registered already.
    error ExchangeAgreementExists(bytes32 id);

    /// @notice No agreement `id` is registered.
    error ExchangeUnknownAgreement(bytes32 id);

    /// @notice Agreement `id` was revoked.
    error ExchangeAgreementRevoked(bytes32 id);

    /// @notice Agreement `id` is in force from `validFrom` until `validUntil`; it is now `timestamp`.
    error ExchangeAgreementNotInForce(bytes32 id, uint256 validFrom, uint256 validUntil, uint256 timestamp);

    /// @notice Going round `id` then `reverse` (at their best rates, bonuses included) could
    /// give back as many points as it took, or more.
    error ExchangeRoundTripGain(bytes32 id, bytes32 reverse);

    /// @notice Only an admin of `token` (its DEFAULT_ADMIN_ROLE) says which brands are paid for
    /// points exchanged into it; `account` is not one.
    error ExchangeNotProgramAdmin(address token, address account);

    /// @notice `brand` is not a brand `token`'s admin allowed to be paid for points exchanged into it.
    error ExchangeNotProgramBrand(address token, address brand);

    /// @notice `max` live agreements from `source` to `target` are registered already.
    error ExchangeTooManyRoutes(address source, address target, uint256 max);

    /// @notice Only the agreement's brands (or their signers) may revoke it; `caller` is neither.
    error ExchangeNotParty(bytes32 id, address caller);

    /// @notice `amountIn` is below the agreement's minimum `minimumIn`.
    error ExchangeBelowMinimum(uint256 amountIn, uint256 minimumIn);

    /// @notice `amountIn` is not a multiple of `stepIn`.
    error ExchangeOffStep(uint256 amountIn, uint256 stepIn);

    /// @notice `amountIn` is more than the agreement allows in one exchange.
    error ExchangeCapExceeded(uint256 amountIn, uint256 cap);

    /// @notice `member` exchanged `used` this period; `amountIn` more would pass `cap`.
    error ExchangeMemberCapExceeded(address member, uint256 used, uint256 amountIn, uint256 cap);

    /// @notice `amountIn` is out of range (above 2^96 - 1), or earns no points out.
    error ExchangeInvalidAmount(address member, uint256 amountIn);

    /// @notice `payer` would owe `payee` `debt` this period, past the credit limit `limit`.
    error ExchangeCreditLimitExceeded(address payer, address payee, uint256 debt, uint256 limit);

    /// @notice `payer` has not made payment `index` of `period`, due at `due`; it is now `timestamp`.
    error ExchangePayerOverdue(address payer, uint256 period, uint256 index, uint256 due, uint256 timestamp);

    /// @notice Period `period` already owes `pairs` pairs of brands, the most one period holds.
    error ExchangeTooManyPairs(uint256 period, uint256 pairs);

    /// @notice A batch holds `size` orders; it must hold between 1 and `max`.
    error ExchangeInvalidBatchSize(uint256 size, uint256 max);

    /// @notice Periods close in order: the next to close is `next`, not `period`.
    error ExchangePeriodNotNext(uint256 period, uint256 next);

    /// @notice Period `period` ends at `end`; it is now `timestamp`.
    error ExchangePeriodNotEnded(uint256 period, uint256 end, uint256 timestamp);

    /// @notice Period `period` asks for no payment `index`.
    error ExchangeUnknownPayment(uint256 period, uint256 index);

    /// @notice Payment `index` of `period` is settled already.
    error ExchangePaymentSettled(uint256 period, uint256 index);

    /// @notice Only `expected` may do this to the payment; `caller` tried.
    error ExchangeNotYourPayment(address caller, address expected);

    // ------------------------------------------------------------------------------ agreements

    /// @notice Register `agreement`, signed by the payer's and the payee's agreement signers;
    /// the payee must be a brand the target's admin allowed (`setProgramBrand`), so nobody mints
    /// a program's points without its say. Anyone may send it. Refuses an agreement whose round
    /// trip with a registered, unrevoked, unexpired agreement the other way (directly; longer
    /// cycles are not checked) would give back as many points as it took, or more.
    /// @return id The agreement's EIP-712 digest: its id, and the `rewardId` members consent to.
    function registerAgreement(Agreement calldata agreement, bytes calldata payerSignature, bytes calldata payeeSignature)
        external
        returns (bytes32 id);

    /// @notice Allow `brand` (or stop allowing it) to be the payee of agreements exchanging into
    /// `token`: an admin of `token` only. Stopping a brand refuses its new agreements; the
    /// token's admin lowers the exchange's issue budget to stop incoming points at once.
    function setProgramBrand(address token, address brand, bool allowed) external;

    /// @notice Stop `agreement` for future exchanges. Either brand, or its agreement signer.
    function revokeAgreement(Agreement calldata agreement) external;

    /// @notice Sign the caller's (a brand's) agreements with `signer` from now on (by default a
    /// brand signs with its own address).
    function setAgreementSigner(address signer) external;

    // ------------------------------------------------------------------------------ exchanging

    /// @notice Burn `amountIn` of `member`'s points on the agreement's source and mint what the
    /// agreement gives for them on its target, adding what the payer owes to this period's debt.
    /// @dev RELAYER_ROLE only. `consent` is the member's signature over `Redeem(member, this
    /// contract, amountIn, uint256(id), ref, nonce, deadline)` on the source token; `ref` is
    /// also the mint's ref on the target. Emits `Exchanged`.
    /// @return amountOut Points minted on the target.
    function exchange(
        Agreement calldata agreement,
        address member,
        uint256 amountIn,
        uint256 ref,
        uint256 deadline,
        bytes calldata consent
    ) external returns (uint256 amountOut);

    /// @notice `exchange` for each of `orders` under one agreement, all or none.
    /// @dev RELAYER_ROLE only; 1 to `MAX_BATCH_SIZE` orders.
    function exchangeBatch(Agreement calldata agreement, Order[] calldata orders) external;

    // ------------------------------------------------------------------------------ settlement

    /// @notice Close `period` (the next to close, once it has ended): net each brand's position
    /// over its debts and credits and ask debtors to pay creditors, by ascending address
    /// (debtors in order, each paying creditors in order until it owes nothing), in at most
    /// n - 1 payments for n brands. Anyone may call it.
    function closePeriod(uint256 period) external;

    /// @notice Make payment `index` of `period`: the debtor (the caller) pays the creditor in
    /// the settlement token through this contract (the debtor approves it first).
    function settle(uint256 period, uint256 index) external;

    /// @notice The creditor (the caller) confirms payment `index` of `period` was made off-chain.
    function confirmReceipt(uint256 period, uint256 index) external;

    // ----------------------------------------------------------------------------------- views

    /// @notice Agreement `agreement`'s id: its EIP-712 digest on this deployment.
    function agreementId(Agreement calldata agreement) external view returns (bytes32);

    /// @notice Whether agreement `id` is registered, and whether it was revoked.
    function agreementStatus(bytes32 id) external view returns (bool registered, bool revoked);

    /// @notice Whether `token`'s admin allowed `brand` to be paid for points exchanged into it.
    function isProgramBrand(address token, address brand) external view returns (bool);

    /// @notice Who signs `brand`'s agreements.
    function signerOf(address brand) external view returns (address);

    /// @notice What `amountIn` would give under `agreement`, and what the payer would owe for it
    /// (checks the amount, not the agreement's registration, dates or the member's cap).
    function quote(Agreement calldata agreement, uint256 amountIn) external pure returns (uint256 amountOut, uint256 owed);

    /// @notice Points in `member` exchanged under agreement `id` in the current period.
    function memberExchanged(bytes32 id, address member) external view returns (uint256);

    /// @notice What `payer` owes `payee` for exchanges in `period`.
    function debtOf(uint256 period, address payer, address payee) external view returns (uint256);

    /// @notice The payments closing `period` asked for (none before it closes).
    function paymentsOf(uint256 period) external view returns (Payment[] memory);

    /// @notice `debtor`'s oldest payment not made yet, if any.
    function oldestUnpaid(address debtor) external view returns (bool any, uint256 period, uint256 index, uint256 due);

    /// @notice The settlement period now (period 0 starts at deployment).
    function currentPeriod() external view returns (uint256);

    /// @notice Unix time at which `period` ends (and may be closed).
    function periodEnd(uint256 period) external view returns (uint256);

    /// @notice Unix time by which `period`'s payments are due.
    function dueDate(uint256 period) external view returns (uint256);

    /// @notice The next period to close.
    function nextPeriodToClose() external view returns (uint256);

    /// @notice The ERC-20 brands settle in.
    function settlementToken() external view returns (address);
}
