// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ILoyaltyPoints} from "./interfaces/ILoyaltyPoints.sol";
import {IPointsExchange} from "./interfaces/IPointsExchange.sol";
import {ExchangeRate} from "./libraries/ExchangeRate.sol";

/// @title PointsExchange
/// @notice Exchanges between loyalty programs at rates both brands signed, and the brands'
/// settlement of what the exchanges owe, period by period.
/// @dev An exchange reads one slot of the agreement (its status: the terms come in calldata
/// and must hash to a registered id), one of the payer's payment queue, and writes the
/// period's debt of the payer to the payee (and the member's use, for a capped agreement).
contract PointsExchange is IPointsExchange, AccessControl, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice Role of the services that relay members' exchanges.
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    /// @notice EIP-712 type of a rate agreement.
    bytes32 public constant AGREEMENT_TYPEHASH = keccak256(
        "Agreement(address source,address target,address payer,address payee,uint32 rateNumerator,uint32 rateDenominator,uint64 minimumIn,uint64 stepIn,uint64 maxInPerExchange,uint64 maxInPerMemberPeriod,uint64 bonusEvery,uint64 bonusOut,uint128 pricePerPoint,uint128 creditLimit,uint64 validFrom,uint64 validUntil,uint256 salt)"
    );
    /// @notice Most orders in one `exchangeBatch`.
    uint256 public constant MAX_BATCH_SIZE = 200;
    /// @notice Most pairs of brands owing each other in one period: `closePeriod` then nets at
    /// most 128 brands into at most 127 payments (about 13M gas at worst).
    uint256 public constant MAX_PAIRS_PER_PERIOD = 64;
    /// @notice Most live agreements from one program to another (bounds registration's gas:
    /// each registration checks the round trips of those the other way).
    uint256 public constant MAX_ROUTES = 64;

    /// @dev A token's points fit a lot of 96 bits (LoyaltyPoints' MAX_AMOUNT).
    uint256 private constant _MAX_AMOUNT = (1 << 96) - 1;
    uint256 private constant _REGISTERED = 1;
    uint256 private constant _REVOKED = 2;
    uint256 private constant _USE_SHIFT = 192;

    IERC20 private immutable _settlementToken;
    uint256 private immutable _startTime;
    uint256 private immutable _periodLength;
    uint256 private immutable _paymentWindow;

    /// @dev An agreement registered one way, with its best rate, for round-trip checks.
    struct Route {
        bytes32 id;
        uint128 bestNumerator;
        uint128 bestDenominator;
        uint64 validUntil;
    }

    struct Pair {
        address payer;
        address payee;
    }

    /// @dev A debtor's payments in the order they fell due; `head` is the oldest not made.
    struct Queue {
        uint64 head;
        uint64 tail;
        mapping(uint256 position => uint256) entries; // period << 64 | index
    }

    uint256 private _nextToClose;
    mapping(bytes32 id => uint256) private _status;
    mapping(address brand => address) private _signers;
    mapping(address source => mapping(address target => Route[])) private _routes;
    /// @dev period << 192 | points in, for capped agreements: a new period starts from zero.
    mapping(bytes32 id => mapping(address member => uint256)) private _memberUse;
    mapping(uint256 period => mapping(address payer => mapping(address payee => uint256))) private _debts;
    mapping(uint256 period => Pair[]) private _pairs;
    mapping(uint256 period => Payment[]) private _payments;
    mapping(address debtor => Queue) private _queues;
    mapping(address token => mapping(address brand => bool)) private _programBrands;

    /// @param admin Holder of the admin role (grants RELAYER_ROLE).
    /// @param settlementToken_ The ERC-20 brands settle in.
    /// @param periodLength_ Seconds per settlement period (for example a week).
    /// @param paymentWindow_ Seconds after a period's end by which its payments are due.
    constructor(address admin, address settlementToken_, uint256 periodLength_, uint256 paymentWindow_)
        EIP712("PointsExchange", "1")
    {
        if (admin == address(0)) revert ExchangeInvalidAdmin(admin);
        if (settlementToken_ == address(0)) revert ExchangeInvalidSettlementToken(settlementToken_);
        if (periodLength_ == 0 || periodLength_ > type(uint32).max || paymentWindow_ > type(uint32).max) {
            revert ExchangeInvalidPeriods(periodLength_, paymentWindow_);
        }
        _settlementToken = IERC20(settlementToken_);
        _startTime = block.timestamp;
        _periodLength = periodLength_;
        _paymentWindow = paymentWindow_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------------------ agreements

    /// @inheritdoc IPointsExchange
    function registerAgreement(Agreement calldata agreement, bytes calldata payerSignature, bytes calldata payeeSignature)
        external
        returns (bytes32 id)
    {
        _checkTerms(agreement);
        if (agreement.validUntil <= agreement.validFrom || agreement.validUntil <= block.timestamp) {
            revert ExchangeInvalidValidity(agreement.validFrom, agreement.validUntil, block.timestamp);
        }
        if (!_programBrands[agreement.target][agreement.payee]) {
            revert ExchangeNotProgramBrand(agreement.target, agreement.payee);
        }
        id = _agreementId(agreement);
        if (_status[id] != 0) revert ExchangeAgreementExists(id);
        _checkSignature(id, agreement.payer, payerSignature);
        _checkSignature(id, agreement.payee, payeeSignature);
        (uint256 numerator, uint256 denominator) = ExchangeRate.best(
            agreement.rateNumerator, agreement.rateDenominator, agreement.bonusEvery, agreement.bonusOut
        );
        Route[] storage reverse = _prunedRoutes(agreement.target, agreement.source);
        for (uint256 i; i < reverse.length; ++i) {
            Route memory back = reverse[i];
            if (ExchangeRate.roundTripGains(numerator, denominator, back.bestNumerator, back.bestDenominator)) {
                revert ExchangeRoundTripGain(id, back.id);
            }
        }
        Route[] storage forward = _prunedRoutes(agreement.source, agreement.target);
        if (forward.length == MAX_ROUTES) revert ExchangeTooManyRoutes(agreement.source, agreement.target, MAX_ROUTES);
        _status[id] = _REGISTERED;
        // Cannot truncate: `best` parts stay below 2^97.
        forward.push(Route(id, uint128(numerator), uint128(denominator), agreement.validUntil));
        emit AgreementRegistered(id, agreement.source, agreement.target, agreement);
    }

    /// @inheritdoc IPointsExchange
    function revokeAgreement(Agreement calldata agreement) external {
        bytes32 id = _agreementId(agreement);
        uint256 status = _status[id];
        if (status == 0) revert ExchangeUnknownAgreement(id);
        if (status == _REVOKED) revert ExchangeAgreementRevoked(id);
        address caller = msg.sender;
        if (
            caller != agreement.payer && caller != agreement.payee && caller != signerOf(agreement.payer)
                && caller != signerOf(agreement.payee)
        ) {
            revert ExchangeNotParty(id, caller);
        }
        _status[id] = _REVOKED;
        emit AgreementRevoked(id, caller);
    }

    /// @inheritdoc IPointsExchange
    function setProgramBrand(address token, address brand, bool allowed) external {
        if (!IAccessControl(token).hasRole(bytes32(0), msg.sender)) revert ExchangeNotProgramAdmin(token, msg.sender);
        _programBrands[token][brand] = allowed;
        emit ProgramBrandSet(token, brand, allowed, msg.sender);
    }

    /// @inheritdoc IPointsExchange
    function setAgreementSigner(address signer) external {
        _signers[msg.sender] = signer;
        emit AgreementSignerSet(msg.sender, signer == address(0) ? msg.sender : signer);
    }

    // ------------------------------------------------------------------------------ exchanging

    /// @inheritdoc IPointsExchange
    function exchange(
        Agreement calldata agreement,
        address member,
        uint256 amountIn,
        uint256 ref,
        uint256 deadline,
        bytes calldata consent
    ) external onlyRole(RELAYER_ROLE) returns (uint256 amountOut) {
        bytes32 id;
        (id, amountOut) = _record(agreement, member, amountIn, ref);
        ILoyaltyPoints(agreement.source).redeem(member, amountIn, uint256(id), ref, deadline, consent);
        ILoyaltyPoints(agreement.target).earn(member, amountOut, ref);
    }

    /// @inheritdoc IPointsExchange
    function exchangeBatch(Agreement calldata agreement, Order[] calldata orders) external onlyRole(RELAYER_ROLE) {
        uint256 size = orders.length;
        if (size == 0 || size > MAX_BATCH_SIZE) revert ExchangeInvalidBatchSize(size, MAX_BATCH_SIZE);
        (bytes32 id, uint256 period) = _checkInForce(agreement);
        uint256[] memory amountsOut = new uint256[](size);
        uint256 before = _debts[period][agreement.payer][agreement.payee];
        uint256 debt = before;
        // Every check, and the debt, before any call to the tokens.
        for (uint256 i; i < size; ++i) {
            (amountsOut[i], debt) = _recordOrder(agreement, id, period, orders[i], debt);
        }
        _addDebt(agreement, period, before, debt - before);
        ILoyaltyPoints source = ILoyaltyPoints(agreement.source);
        ILoyaltyPoints target = ILoyaltyPoints(agreement.target);
        for (uint256 i; i < size; ++i) {
            Order calldata order = orders[i];
            source.redeem(order.member, order.amountIn, uint256(id), order.ref, order.deadline, order.consent);
            target.earn(order.member, amountsOut[i], order.ref);
        }
    }

    // ------------------------------------------------------------------------------ settlement

    /// @inheritdoc IPointsExchange
    function closePeriod(uint256 period) external {
        if (period != _nextToClose) revert ExchangePeriodNotNext(period, _nextToClose);
        uint256 end = periodEnd(period);
        if (block.timestamp < end) revert ExchangePeriodNotEnded(period, end, block.timestamp);
        _nextToClose = period + 1;
        (address[] memory brands, int256[] memory net) = _netPositions(period);
        uint256 due = dueDate(period);
        Payment[] storage payments = _payments[period];
        uint256 creditor;
        for (uint256 debtor; debtor < brands.length; ++debtor) {
            if (net[debtor] >= 0) continue;
            uint256 owes = uint256(-net[debtor]);
            while (owes != 0) {
                // Positions sum to zero, so the creditors' credit covers every debtor's debt.
                while (net[creditor] <= 0) ++creditor;
                uint256 amount = owes < uint256(net[creditor]) ? owes : uint256(net[creditor]);
                owes -= amount;
                net[creditor] -= SafeCast.toInt256(amount);
                uint256 index = payments.length;
                payments.push(Payment(brands[debtor], false, brands[creditor], amount));
                Queue storage queue = _queues[brands[debtor]];
                queue.entries[queue.tail++] = (period << 64) | index;
                emit PaymentDue(period, index, brands[debtor], brands[creditor], amount, due);
            }
        }
        emit PeriodClosed(period, brands.length, payments.length);
    }

    /// @inheritdoc IPointsExchange
    function settle(uint256 period, uint256 index) external {
        Payment storage payment = _payment(period, index);
        (address debtor, address creditor, uint256 amount) = (payment.debtor, payment.creditor, payment.amount);
        if (msg.sender != debtor) revert ExchangeNotYourPayment(msg.sender, debtor);
        _markSettled(payment, period, index, false);
        _settlementToken.safeTransferFrom(debtor, creditor, amount);
    }

    /// @inheritdoc IPointsExchange
    function confirmReceipt(uint256 period, uint256 index) external {
        Payment storage payment = _payment(period, index);
        if (msg.sender != payment.creditor) revert ExchangeNotYourPayment(msg.sender, payment.creditor);
        _markSettled(payment, period, index, true);
    }

    // ----------------------------------------------------------------------------------- views

    /// @inheritdoc IPointsExchange
    function agreementId(Agreement calldata agreement) external view returns (bytes32) {
        return _agreementId(agreement);
    }

    /// @inheritdoc IPointsExchange
    function agreementStatus(bytes32 id) external view returns (bool registered, bool revoked) {
        uint256 status = _status[id];
        return (status != 0, status == _REVOKED);
    }

    /// @inheritdoc IPointsExchange
    function isProgramBrand(address token, address brand) external view returns (bool) {
        return _programBrands[token][brand];
    }

    /// @inheritdoc IPointsExchange
    function signerOf(address brand) public view returns (address) {
        address signer = _signers[brand];
        return signer == address(0) ? brand : signer;
    }

    /// @inheritdoc IPointsExchange
    function quote(Agreement calldata agreement, uint256 amountIn) external pure returns (uint256 amountOut, uint256 owed) {
        _checkTerms(agreement);
        return _quote(agreement, address(0), amountIn);
    }

    /// @inheritdoc IPointsExchange
    function memberExchanged(bytes32 id, address member) external view returns (uint256) {
        uint256 packed = _memberUse[id][member];
        return packed >> _USE_SHIFT == currentPeriod() ? packed & ((1 << _USE_SHIFT) - 1) : 0;
    }

    /// @inheritdoc IPointsExchange
    function debtOf(uint256 period, address payer, address payee) external view returns (uint256) {
        return _debts[period][payer][payee];
    }

    /// @inheritdoc IPointsExchange
    function paymentsOf(uint256 period) external view returns (Payment[] memory) {
        return _payments[period];
    }

    /// @inheritdoc IPointsExchange
    function oldestUnpaid(address debtor) public view returns (bool any, uint256 period, uint256 index, uint256 due) {
        Queue storage queue = _queues[debtor];
        if (queue.head == queue.tail) return (false, 0, 0, 0);
        uint256 entry = queue.entries[queue.head];
        (period, index) = (entry >> 64, entry & type(uint64).max);
        return (true, period, index, dueDate(period));
    }

    /// @inheritdoc IPointsExchange
    function currentPeriod() public view returns (uint256) {
        // Cannot underflow: `_startTime` is the deployment block's time; `_periodLength` != 0.
        unchecked {
            return (block.timestamp - _startTime) / _periodLength;
        }
    }

    /// @inheritdoc IPointsExchange
    function periodEnd(uint256 period) public view returns (uint256) {
        return _startTime + (period + 1) * _periodLength;
    }

    /// @inheritdoc IPointsExchange
    function dueDate(uint256 period) public view returns (uint256) {
        return periodEnd(period) + _paymentWindow;
    }

    /// @inheritdoc IPointsExchange
    function nextPeriodToClose() external view returns (uint256) {
        return _nextToClose;
    }

    /// @inheritdoc IPointsExchange
    function settlementToken() external view returns (address) {
        return address(_settlementToken);
    }

    /// @notice ERC-165: IPointsExchange and AccessControl's interfaces.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IPointsExchange).interfaceId || super.supportsInterface(interfaceId);
    }

    // -------------------------------------------------------------------------------- internals

    /// @dev The live routes from `source` to `target`: revoked and ended ones are dropped (the
    /// last moved into their place), so the list stays short and registration's gas bounded.
    function _prunedRoutes(address source, address target) private returns (Route[] storage routes) {
        routes = _routes[source][target];
        uint256 i;
        while (i < routes.length) {
            Route storage route = routes[i];
            if (_status[route.id] == _REVOKED || route.validUntil <= block.timestamp) {
                routes[i] = routes[routes.length - 1];
                routes.pop();
            } else {
                ++i;
            }
        }
    }

    function _agreementId(Agreement calldata agreement) private view returns (bytes32) {
        // Every field is a static type, so abi.encode lays them out as EIP-712's encodeData.
        return _hashTypedDataV4(keccak256(abi.encode(AGREEMENT_TYPEHASH, agreement)));
    }

    /// @dev The terms any agreement needs to make sense (dates are checked at registration).
    function _checkTerms(Agreement calldata a) private pure {
        if (a.source == address(0) || a.target == address(0) || a.source == a.target) {
            revert ExchangeInvalidPrograms(a.source, a.target);
        }
        if (a.payer == address(0) || a.payee == address(0) || a.payer == a.payee) {
            revert ExchangeInvalidBrands(a.payer, a.payee);
        }
        if (a.rateNumerator == 0 || a.rateDenominator == 0) revert ExchangeInvalidRate(a.rateNumerator, a.rateDenominator);
        if (
            a.stepIn == 0 || (a.maxInPerExchange != 0 && a.maxInPerExchange < a.minimumIn)
                || (a.maxInPerMemberPeriod != 0 && a.maxInPerMemberPeriod < a.minimumIn)
        ) {
            revert ExchangeInvalidAmounts(a.minimumIn, a.stepIn, a.maxInPerExchange, a.maxInPerMemberPeriod);
        }
        if ((a.bonusEvery == 0) != (a.bonusOut == 0)) revert ExchangeInvalidBonus(a.bonusEvery, a.bonusOut);
    }

    function _checkSignature(bytes32 id, address brand, bytes calldata signature) private view {
        (address signer,,) = ECDSA.tryRecover(id, signature);
        address expected = signerOf(brand);
        if (signer != expected) revert ExchangeInvalidSignature(brand, signer, expected);
    }

    /// @dev The agreement's id and the period now, once the agreement may be used now and its
    /// payer owes nothing overdue.
    function _checkInForce(Agreement calldata agreement) private view returns (bytes32 id, uint256 period) {
        id = _agreementId(agreement);
        uint256 status = _status[id];
        if (status != _REGISTERED) {
            if (status == 0) revert ExchangeUnknownAgreement(id);
            revert ExchangeAgreementRevoked(id);
        }
        if (block.timestamp < agreement.validFrom || block.timestamp >= agreement.validUntil) {
            revert ExchangeAgreementNotInForce(id, agreement.validFrom, agreement.validUntil, block.timestamp);
        }
        (bool any, uint256 unpaidPeriod, uint256 index, uint256 due) = oldestUnpaid(agreement.payer);
        if (any && block.timestamp > due) {
            revert ExchangePayerOverdue(agreement.payer, unpaidPeriod, index, due, block.timestamp);
        }
        period = currentPeriod();
    }

    function _quote(Agreement calldata a, address member, uint256 amountIn)
        private
        pure
        returns (uint256 amountOut, uint256 owed)
    {
        if (amountIn > _MAX_AMOUNT) revert ExchangeInvalidAmount(member, amountIn);
        if (amountIn < a.minimumIn) revert ExchangeBelowMinimum(amountIn, a.minimumIn);
        if (amountIn % a.stepIn != 0) revert ExchangeOffStep(amountIn, a.stepIn);
        if (a.maxInPerExchange != 0 && amountIn > a.maxInPerExchange) revert ExchangeCapExceeded(amountIn, a.maxInPerExchange);
        amountOut = ExchangeRate.amountOut(amountIn, a.rateNumerator, a.rateDenominator, a.bonusEvery, a.bonusOut);
        if (amountOut == 0 || amountOut > _MAX_AMOUNT) revert ExchangeInvalidAmount(member, amountIn);
        owed = amountOut * a.pricePerPoint; // below 2^224: amountOut < 2^96, price < 2^128
    }

    /// @dev One exchange's checks, cap and debt, and its event; returns the agreement's id and
    /// the points out.
    function _record(Agreement calldata agreement, address member, uint256 amountIn, uint256 ref)
        private
        returns (bytes32 id, uint256 amountOut)
    {
        uint256 period;
        (id, period) = _checkInForce(agreement);
        uint256 owed;
        (amountOut, owed) = _quote(agreement, member, amountIn);
        _useMemberCap(id, agreement.maxInPerMemberPeriod, member, amountIn, period);
        uint256 debt = _addDebt(agreement, period, _debts[period][agreement.payer][agreement.payee], owed);
        emit Exchanged(id, member, amountIn, amountOut, ref, period, owed, debt);
    }

    /// @dev A batch order's checks and cap, and its event, with the batch's debt so far
    /// (`debt`, written once for the batch); returns the points out and the debt after it.
    function _recordOrder(Agreement calldata agreement, bytes32 id, uint256 period, Order calldata order, uint256 debt)
        private
        returns (uint256 amountOut, uint256)
    {
        uint256 owed;
        (amountOut, owed) = _quote(agreement, order.member, order.amountIn);
        _useMemberCap(id, agreement.maxInPerMemberPeriod, order.member, order.amountIn, period);
        debt += owed;
        emit Exchanged(id, order.member, order.amountIn, amountOut, order.ref, period, owed, debt);
        return (amountOut, debt);
    }

    function _useMemberCap(bytes32 id, uint256 cap, address member, uint256 amountIn, uint256 period) private {
        if (cap == 0) return;
        uint256 packed = _memberUse[id][member];
        uint256 used = packed >> _USE_SHIFT == period ? packed & ((1 << _USE_SHIFT) - 1) : 0;
        if (used + amountIn > cap) revert ExchangeMemberCapExceeded(member, used, amountIn, cap);
        _memberUse[id][member] = (period << _USE_SHIFT) | (used + amountIn);
    }

    /// @dev Add `owed` to the period's debt of payer to payee (which was `before`) under the
    /// agreement's credit limit; returns the new debt. A pair's first debt in a period is listed
    /// for `closePeriod`.
    function _addDebt(Agreement calldata agreement, uint256 period, uint256 before, uint256 owed)
        private
        returns (uint256 debt)
    {
        debt = before + owed;
        if (agreement.creditLimit != 0 && debt > agreement.creditLimit) {
            revert ExchangeCreditLimitExceeded(agreement.payer, agreement.payee, debt, agreement.creditLimit);
        }
        if (owed == 0) return debt;
        if (before == 0) {
            Pair[] storage pairs = _pairs[period];
            if (pairs.length == MAX_PAIRS_PER_PERIOD) revert ExchangeTooManyPairs(period, pairs.length);
            pairs.push(Pair(agreement.payer, agreement.payee));
        }
        _debts[period][agreement.payer][agreement.payee] = debt;
    }

    /// @dev Each brand's net position in `period` (credits less debts), brands by ascending address.
    function _netPositions(uint256 period) private view returns (address[] memory brands, int256[] memory net) {
        Pair[] storage pairs = _pairs[period];
        brands = new address[](2 * pairs.length);
        net = new int256[](2 * pairs.length);
        uint256 count;
        for (uint256 i; i < pairs.length; ++i) {
            Pair memory pair = pairs[i];
            int256 debt = SafeCast.toInt256(_debts[period][pair.payer][pair.payee]);
            count = _add(brands, net, count, pair.payer, -debt);
            count = _add(brands, net, count, pair.payee, debt);
        }
        // Shrink both arrays to the brands found: memory is laid out as [length, items...].
        assembly ("memory-safe") {
            mstore(brands, count)
            mstore(net, count)
        }
    }

    /// @dev Add `amount` to `brand`'s position, inserting it in address order; returns the count.
    function _add(address[] memory brands, int256[] memory net, uint256 count, address brand, int256 amount)
        private
        pure
        returns (uint256)
    {
        uint256 at;
        while (at < count && brands[at] < brand) ++at;
        if (at < count && brands[at] == brand) {
            net[at] += amount;
            return count;
        }
        for (uint256 i = count; i > at; --i) {
            (brands[i], net[i]) = (brands[i - 1], net[i - 1]);
        }
        (brands[at], net[at]) = (brand, amount);
        return count + 1;
    }

    function _payment(uint256 period, uint256 index) private view returns (Payment storage payment) {
        Payment[] storage payments = _payments[period];
        if (index >= payments.length) revert ExchangeUnknownPayment(period, index);
        payment = payments[index];
        if (payment.settled) revert ExchangePaymentSettled(period, index);
    }

    /// @dev Mark the payment made and move its debtor's queue past every payment made.
    function _markSettled(Payment storage payment, uint256 period, uint256 index, bool offChain) private {
        payment.settled = true;
        Queue storage queue = _queues[payment.debtor];
        uint64 head = queue.head;
        while (head < queue.tail) {
            uint256 entry = queue.entries[head];
            if (!_payments[entry >> 64][entry & type(uint64).max].settled) break;
            ++head;
        }
        queue.head = head;
        emit PaymentSettled(period, index, payment.debtor, payment.creditor, payment.amount, offChain);
    }

    /// @dev Our error, with the account and role, for every missing role.
    function _checkRole(bytes32 role, address account) internal view override {
        if (!hasRole(role, account)) revert ExchangeMissingRole(account, role);
    }
}
