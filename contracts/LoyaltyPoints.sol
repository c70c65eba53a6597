// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";

import {ILoyaltyPoints} from "./interfaces/ILoyaltyPoints.sol";
import {PackedAccount} from "./libraries/PackedAccount.sol";
import {PackedIssuer} from "./libraries/PackedIssuer.sol";
import {PackedState} from "./libraries/PackedState.sol";

/// @title LoyaltyPoints
/// @notice Loyalty points as an ERC-20 token (decimals 0) with budgets, expiry and member consent.
/// @dev Balances are kept as lots by epoch instead of ERC20's `_balances`; every balance change
/// goes through `_update`, which applies pause, transfer policy and oldest-first spending.
contract LoyaltyPoints is ILoyaltyPoints, ERC20Permit, AccessControl {
    using PackedAccount for uint256;
    using PackedIssuer for uint256;
    using PackedState for uint256;

    /// @notice Role of partner brands' backends: earn points and relay redemptions.
    bytes32 public constant ISSUER_ROLE = keccak256("ISSUER_ROLE");
    /// @notice Role that may pause and unpause.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice EIP-712 type of a member's consent to a redemption.
    bytes32 public constant REDEEM_TYPEHASH = keccak256(
        "Redeem(address member,address issuer,uint256 amount,uint256 rewardId,uint256 ref,uint256 nonce,uint256 deadline)"
    );
    /// @notice Most entries in one `earnBatch` (about 26M gas when every member is new).
    uint256 public constant MAX_BATCH_SIZE = 1000;
    /// @notice How many refs past the lowest unused one an issuer may use out of order.
    uint256 public constant REF_WINDOW = PackedIssuer.REF_WINDOW;
    /// @notice Most epochs points may stay valid for (one ring slot per epoch).
    uint256 public constant MAX_VALIDITY_EPOCHS = 64;
    /// @notice Most gas a smart-contract wallet may use to answer ERC-1271 `isValidSignature`
    /// (enough for a passkey check in Solidity; a wallet cannot burn the relayer's whole gas).
    uint256 public constant CONSENT_WALLET_GAS = 500_000;

    uint256 private immutable _startTime;
    uint256 private immutable _epochLength;
    uint256 private immutable _validityEpochs;

    /// @dev `head` packs the newest lot, the ring mask and the nonce; `ring[epoch % validity]`
    /// holds older lots. Ring slots are reused rather than cleared (see PackedAccount).
    struct Account {
        uint256 head;
        uint256[MAX_VALIDITY_EPOCHS] ring;
    }

    /// @dev Flags and the newest epoch's supply (PackedState): an earn writes one global slot.
    uint256 private _state;
    /// @dev Unexpired points per epoch of earning, for epochs other than `_state.supplyEpoch()`.
    mapping(uint256 epoch => uint256) private _supplyByEpoch;
    mapping(address member => Account) private _accounts;
    /// @dev An issuer's budget and ref window share a slot (PackedIssuer): an earn writes it
    /// once. Only ISSUER_ROLE holders have a budget (revoking the role clears it).
    mapping(address issuer => uint256) private _issuers;

    /// @param name_ Token name (also the EIP-712 domain name).
    /// @param symbol_ Token symbol.
    /// @param admin Holder of the admin and pauser roles.
    /// @param epochLength_ Seconds per epoch (for example 30 days).
    /// @param validityEpochs_ Epochs points stay valid, the one earned in included (for example 12).
    constructor(string memory name_, string memory symbol_, address admin, uint256 epochLength_, uint256 validityEpochs_)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
    {
        if (admin == address(0)) revert LoyaltyInvalidAdmin(admin);
        if (
            epochLength_ == 0 || epochLength_ > type(uint32).max || validityEpochs_ == 0
                || validityEpochs_ > MAX_VALIDITY_EPOCHS
        ) {
            revert LoyaltyInvalidExpiryConfig(epochLength_, validityEpochs_);
        }
        _startTime = block.timestamp;
        _epochLength = epochLength_;
        _validityEpochs = validityEpochs_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
    }

    // ---------------------------------------------------------------------------------- issuing

    /// @inheritdoc ILoyaltyPoints
    function earn(address member, uint256 amount, uint256 ref) external {
        _checkEarn(member, amount);
        _useBudgetAndRef(msg.sender, amount, ref);
        _update(address(0), member, amount); // `_mint` minus its zero check, done above
        emit Earned(member, msg.sender, amount, ref, expiryOf(_epochNow()));
    }

    /// @inheritdoc ILoyaltyPoints
    function earnBatch(address[] calldata members, uint256[] calldata amounts, uint256 batchRef) external {
        _checkRole(ISSUER_ROLE);
        uint256 size = members.length;
        if (size != amounts.length) revert LoyaltyArrayLengthMismatch(size, amounts.length);
        if (size == 0 || size > MAX_BATCH_SIZE) revert LoyaltyInvalidBatchSize(size, MAX_BATCH_SIZE);
        // The rules of `_update` for a mint, applied once per batch instead of once per member:
        // that is what keeps a batch earn within 10% of a plain ERC-20 batch mint.
        uint256 state = _state;
        if (state.paused()) revert LoyaltyPaused();
        uint256 nowEpoch = _epochNow();
        uint256 total;
        for (uint256 i; i < size; ++i) {
            (address member, uint256 amount) = (members[i], amounts[i]);
            _checkEarn(member, amount);
            // Cannot overflow: at most MAX_BATCH_SIZE amounts, each below 2^96.
            unchecked {
                total += amount;
            }
            _credit(member, nowEpoch, amount, nowEpoch);
            emit Transfer(address(0), member, amount);
        }
        _useBudgetAndRef(msg.sender, total, batchRef);
        _addSupply(state, nowEpoch, total);
        emit BatchEarned(msg.sender, batchRef, size, total, expiryOf(nowEpoch));
    }

    /// @inheritdoc ILoyaltyPoints
    function redeem(
        address member,
        uint256 amount,
        uint256 rewardId,
        uint256 ref,
        uint256 deadline,
        bytes calldata signature
    ) external onlyRole(ISSUER_ROLE) {
        if (member == address(0)) revert LoyaltyInvalidMember(member);
        if (amount == 0 || amount > PackedAccount.MAX_AMOUNT) revert LoyaltyInvalidAmount(member, amount);
        if (block.timestamp > deadline) revert LoyaltyExpiredSignature(deadline, block.timestamp);
        // `ref` is the issuer's label, not spent from its ref window: the member's nonce already
        // makes the consent single-use, and a consent must stay valid until its deadline however
        // many earns the issuer sends meanwhile.
        uint256 nonce = _useNonce(member);
        bytes32 digest = _redeemDigest(member, amount, rewardId, ref, nonce, deadline);
        address signer = _recover(digest, signature);
        if (signer != member && !_isContractConsent(member, digest, signature)) {
            // Tell a replayed consent (signed for an already used nonce) from a foreign one.
            if (nonce != 0 && _recover(_redeemDigest(member, amount, rewardId, ref, nonce - 1, deadline), signature) == member) {
                revert LoyaltyNonceUsed(member, nonce - 1);
            }
            revert LoyaltyInvalidSigner(signer, member);
        }
        _burn(member, amount);
        emit Redeemed(member, msg.sender, amount, rewardId, ref);
    }

    /// @inheritdoc ILoyaltyPoints
    function expire(address[] calldata members) external returns (uint256 swept) {
        if (_state.paused()) revert LoyaltyPaused();
        uint256 nowEpoch = _epochNow();
        for (uint256 i; i < members.length; ++i) {
            swept += _sweep(members[i], nowEpoch);
        }
    }

    // ------------------------------------------------------------------------------------ admin

    /// @inheritdoc ILoyaltyPoints
    function setIssueBudget(address issuer, uint256 budget) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _checkRole(ISSUER_ROLE, issuer);
        if (budget > type(uint128).max) revert LoyaltyInvalidAmount(issuer, budget);
        _issuers[issuer] = _issuers[issuer].withBudget(budget);
        emit IssueBudgetSet(issuer, budget);
    }

    /// @inheritdoc ILoyaltyPoints
    function setTransfersEnabled(bool enabled) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _state = _state.withTransfersEnabled(enabled);
        emit TransfersEnabledSet(enabled);
    }

    /// @inheritdoc ILoyaltyPoints
    function pause() external onlyRole(PAUSER_ROLE) {
        if (_state.paused()) revert LoyaltyPauseUnchanged(true);
        _state = _state.withPaused(true);
        emit Paused(msg.sender);
    }

    /// @inheritdoc ILoyaltyPoints
    function unpause() external onlyRole(PAUSER_ROLE) {
        if (!_state.paused()) revert LoyaltyPauseUnchanged(false);
        _state = _state.withPaused(false);
        emit Unpaused(msg.sender);
    }

    // ------------------------------------------------------------------------------------ views

    /// @notice Points are whole numbers.
    function decimals() public pure override returns (uint8) {
        return 0;
    }

    /// @notice `member`'s unexpired points.
    function balanceOf(address member) public view override returns (uint256 balance) {
        uint256 nowEpoch = _epochNow();
        Account storage account = _accounts[member];
        uint256 head = account.head;
        if (_isLive(head.epoch(), nowEpoch)) balance = head.amount();
        uint256 mask = head.ringMask();
        for (uint256 slot; mask != 0; ++slot) {
            if (mask & (1 << slot) != 0) {
                uint256 lot = account.ring[slot];
                if (_isLive(lot.epoch(), nowEpoch)) balance += lot.amount();
                mask &= ~(1 << slot);
            }
        }
    }

    /// @notice Unexpired points of all members.
    function totalSupply() public view override returns (uint256 supply) {
        uint256 nowEpoch = _epochNow();
        for (uint256 epoch = _firstLiveEpoch(nowEpoch); epoch <= nowEpoch; ++epoch) {
            supply += _supplyOf(epoch);
        }
    }

    /// @inheritdoc ILoyaltyPoints
    function lotsOf(address member) external view returns (Lot[] memory lots) {
        uint256 nowEpoch = _epochNow();
        Account storage account = _accounts[member];
        uint256 head = account.head;
        lots = new Lot[](_validityEpochs);
        uint256 count;
        uint256 mask = head.ringMask();
        for (uint256 epoch = _firstLiveEpoch(nowEpoch); epoch < head.epoch() && mask != 0; ++epoch) {
            uint256 slot = epoch % _validityEpochs;
            uint256 lot = account.ring[slot];
            if (mask & (1 << slot) != 0 && lot.epoch() == epoch) {
                lots[count++] = Lot(expiryOf(epoch), lot.amount());
            }
        }
        if (head.amount() != 0 && _isLive(head.epoch(), nowEpoch)) {
            lots[count++] = Lot(expiryOf(head.epoch()), head.amount());
        }
        // Shrink the array to the lots found: memory is laid out as [length, items...].
        assembly ("memory-safe") {
            mstore(lots, count)
        }
    }

    /// @inheritdoc ILoyaltyPoints
    function expiredBalanceOf(address member) external view returns (uint256 expired) {
        uint256 nowEpoch = _epochNow();
        Account storage account = _accounts[member];
        uint256 head = account.head;
        if (!_isLive(head.epoch(), nowEpoch)) expired = head.amount();
        uint256 mask = head.ringMask();
        for (uint256 slot; mask != 0; ++slot) {
            if (mask & (1 << slot) != 0) {
                uint256 lot = account.ring[slot];
                if (!_isLive(lot.epoch(), nowEpoch)) expired += lot.amount();
                mask &= ~(1 << slot);
            }
        }
    }

    /// @inheritdoc ILoyaltyPoints
    function issueBudget(address issuer) external view returns (uint256) {
        return _issuers[issuer].budget();
    }

    /// @inheritdoc ILoyaltyPoints
    function isRefUsed(address issuer, uint256 ref) external view returns (bool) {
        return _issuers[issuer].isRefUsed(ref);
    }

    /// @inheritdoc ILoyaltyPoints
    function currentEpoch() external view returns (uint256) {
        return _epochNow();
    }

    /// @inheritdoc ILoyaltyPoints
    function expiryOf(uint256 epoch) public view returns (uint256) {
        if (epoch > type(uint32).max) return type(uint256).max; // past any epoch the token reaches
        // Cannot overflow: every factor is below 2^64 after the check above.
        unchecked {
            return _startTime + (epoch + _validityEpochs) * _epochLength;
        }
    }

    /// @inheritdoc ILoyaltyPoints
    function startTime() external view returns (uint256) {
        return _startTime;
    }

    /// @inheritdoc ILoyaltyPoints
    function epochLength() external view returns (uint256) {
        return _epochLength;
    }

    /// @inheritdoc ILoyaltyPoints
    function validityEpochs() external view returns (uint256) {
        return _validityEpochs;
    }

    /// @inheritdoc ILoyaltyPoints
    function transfersEnabled() external view returns (bool) {
        return _state.transfersEnabled();
    }

    /// @inheritdoc ILoyaltyPoints
    function paused() external view returns (bool) {
        return _state.paused();
    }

    /// @notice The member's next EIP-712 nonce, shared by `redeem` and `permit`.
    function nonces(address owner) public view override returns (uint256) {
        return _accounts[owner].head.nonce();
    }

    /// @notice ERC-165: ILoyaltyPoints, ERC-20, ERC-2612 (permit), ERC-5267 (the EIP-712
    /// domain) and AccessControl's interfaces.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(ILoyaltyPoints).interfaceId || interfaceId == type(IERC20).interfaceId
            || interfaceId == type(IERC20Permit).interfaceId || interfaceId == type(IERC5267).interfaceId
            || super.supportsInterface(interfaceId);
    }

    // ---------------------------------------------------------------------------- balance rules

    /// @dev The one place balances change: mint credits the current epoch, burn and transfer
    /// take the oldest unexpired lots first, and a transfer keeps each lot's epoch.
    function _update(address from, address to, uint256 value) internal override {
        uint256 state = _state;
        if (state.paused()) revert LoyaltyPaused();
        uint256 nowEpoch = _epochNow();
        if (from == address(0)) {
            _credit(to, nowEpoch, value, nowEpoch);
            _addSupply(state, nowEpoch, value);
        } else {
            if (to != address(0) && !state.transfersEnabled()) revert LoyaltyTransfersDisabled(from, to);
            _spendOldestFirst(from, to, value, nowEpoch);
        }
        emit Transfer(from, to, value);
    }

    /// @dev Take `value` from `from`'s unexpired lots, oldest first, and pass each part on to
    /// `to` with its epoch (or out of the supply when burning).
    function _spendOldestFirst(address from, address to, uint256 value, uint256 nowEpoch) private {
        if (from == to) {
            uint256 balance = balanceOf(from);
            if (balance < value) revert LoyaltyInsufficientBalance(from, balance, value);
            return;
        }
        Account storage account = _accounts[from];
        uint256 head = account.head;
        uint256 remaining = value;
        uint256 mask = head.ringMask();
        for (uint256 epoch = _firstLiveEpoch(nowEpoch); epoch < head.epoch() && mask != 0 && remaining != 0; ++epoch) {
            uint256 slot = epoch % _validityEpochs;
            if (mask & (1 << slot) == 0) continue;
            uint256 lot = account.ring[slot];
            if (lot.epoch() != epoch) continue; // an expired lot from an older epoch
            uint256 taken = lot.amount() < remaining ? lot.amount() : remaining;
            remaining -= taken;
            if (taken == lot.amount()) {
                mask &= ~(1 << slot); // the slot keeps its stale value; clearing it would cost 22.1k on reuse
            } else {
                account.ring[slot] = lot.withLot(epoch, lot.amount() - taken);
            }
            _passOn(to, epoch, taken, nowEpoch);
        }
        head = head.withRingMask(mask);
        if (remaining != 0) {
            uint256 headAmount = _isLive(head.epoch(), nowEpoch) ? head.amount() : 0;
            if (headAmount < remaining) {
                revert LoyaltyInsufficientBalance(from, value - remaining + headAmount, value);
            }
            head = head.withLot(head.epoch(), headAmount - remaining);
        }
        account.head = head;
        if (remaining != 0) _passOn(to, head.epoch(), remaining, nowEpoch);
    }

    /// @dev Credit points of `epoch` to `to`, or take them out of the supply when `to` is zero.
    function _passOn(address to, uint256 epoch, uint256 amount, uint256 nowEpoch) private {
        if (to == address(0)) {
            _subSupply(epoch, amount);
        } else {
            _credit(to, epoch, amount, nowEpoch);
        }
    }

    /// @dev Add a lot of `epoch` to `member`: the newest lot lives in the head, older ones in the ring.
    function _credit(address member, uint256 epoch, uint256 amount, uint256 nowEpoch) private {
        Account storage account = _accounts[member];
        uint256 head = account.head;
        uint256 headEpoch = head.epoch();
        if (epoch == headEpoch || (epoch > headEpoch && head.amount() == 0)) {
            uint256 sum = (epoch == headEpoch ? head.amount() : 0) + amount;
            if (sum > PackedAccount.MAX_AMOUNT) revert LoyaltyInvalidAmount(member, amount);
            account.head = head.withLot(epoch, sum);
        } else if (epoch > headEpoch) {
            head = _stash(member, account, head, headEpoch, head.amount(), nowEpoch);
            account.head = head.withLot(epoch, amount);
        } else {
            account.head = _stash(member, account, head, epoch, amount, nowEpoch);
        }
    }

    /// @dev Put a lot older than the head's into the ring and return the head with its mask
    /// updated. An expired lot (the one given, or a stale one in its slot) is burned instead.
    function _stash(address member, Account storage account, uint256 head, uint256 epoch, uint256 amount, uint256 nowEpoch)
        private
        returns (uint256)
    {
        if (!_isLive(epoch, nowEpoch)) {
            _emitExpired(member, epoch, amount);
            return head;
        }
        uint256 slot = epoch % _validityEpochs;
        uint256 mask = head.ringMask();
        uint256 lot = account.ring[slot];
        uint256 sum = amount;
        if (mask & (1 << slot) != 0) {
            // Two live epochs never share a slot, so a different epoch here has expired.
            if (lot.epoch() == epoch) sum += lot.amount();
            else _emitExpired(member, lot.epoch(), lot.amount());
        }
        if (sum > PackedAccount.MAX_AMOUNT) revert LoyaltyInvalidAmount(member, amount);
        account.ring[slot] = lot.withLot(epoch, sum);
        return head.withRingMask(mask | (1 << slot));
    }

    /// @dev Burn `member`'s expired lots; returns the points burned.
    function _sweep(address member, uint256 nowEpoch) private returns (uint256 swept) {
        Account storage account = _accounts[member];
        uint256 head = account.head;
        uint256 mask = head.ringMask();
        for (uint256 slot; slot < _validityEpochs; ++slot) {
            if (mask & (1 << slot) == 0) continue;
            uint256 lot = account.ring[slot];
            if (_isLive(lot.epoch(), nowEpoch)) continue;
            _emitExpired(member, lot.epoch(), lot.amount());
            swept += lot.amount();
            mask &= ~(1 << slot);
        }
        head = head.withRingMask(mask);
        if (head.amount() != 0 && !_isLive(head.epoch(), nowEpoch)) {
            _emitExpired(member, head.epoch(), head.amount());
            swept += head.amount();
            head = head.withLot(head.epoch(), 0);
        }
        if (swept != 0) account.head = head;
    }

    /// @dev Expired points left the supply when their epoch ended; this makes it visible to
    /// indexers that sum `Transfer` events.
    function _emitExpired(address member, uint256 epoch, uint256 amount) private {
        if (amount == 0) return;
        emit Transfer(member, address(0), amount);
        emit Expired(member, epoch, amount);
    }

    // ------------------------------------------------------------------------------ accounting

    /// @dev Add `amount` earned in `epoch` (the current one) to the supply; `state` is `_state`.
    function _addSupply(uint256 state, uint256 epoch, uint256 amount) private {
        uint256 supply = state.epochSupply();
        if (state.supplyEpoch() != epoch) {
            // First earn of a new epoch: file the previous epoch's supply and start a new one.
            _supplyByEpoch[state.supplyEpoch()] = supply;
            supply = 0;
        }
        // Cannot overflow 256 bits: supply < 2^128 and amount < 2^96; the 128-bit cap is checked.
        unchecked {
            supply += amount;
        }
        if (supply > type(uint128).max) revert LoyaltyInvalidAmount(address(0), amount);
        _state = state.withEpochSupply(epoch, supply);
    }

    function _subSupply(uint256 epoch, uint256 amount) private {
        uint256 state = _state;
        if (state.supplyEpoch() == epoch) {
            _state = state.withEpochSupply(epoch, state.epochSupply() - amount);
        } else {
            _supplyByEpoch[epoch] -= amount;
        }
    }

    function _supplyOf(uint256 epoch) private view returns (uint256) {
        uint256 state = _state;
        return state.supplyEpoch() == epoch ? state.epochSupply() : _supplyByEpoch[epoch];
    }

    /// @dev Spend `amount` of the issuer's budget and use `ref`, in one slot write. Only
    /// ISSUER_ROLE holders have a budget, so the budget check doubles as the role check.
    function _useBudgetAndRef(address issuer, uint256 amount, uint256 ref) private {
        uint256 packed = _issuers[issuer];
        uint256 budget = packed.budget();
        if (budget < amount) {
            _checkRole(ISSUER_ROLE, issuer);
            revert LoyaltyBudgetExceeded(issuer, budget, amount);
        }
        // Cannot underflow: checked just above.
        unchecked {
            packed = packed.withBudget(budget - amount);
        }
        _issuers[issuer] = _withRefUsed(issuer, packed, ref);
    }

    function _withRefUsed(address issuer, uint256 packed, uint256 ref) private pure returns (uint256) {
        if (ref > type(uint64).max) revert LoyaltyRefOutOfRange(ref);
        (uint256 updated, bool ok) = packed.withRefUsed(ref);
        if (!ok) revert LoyaltyRefUsed(issuer, ref);
        return updated;
    }

    function _checkEarn(address member, uint256 amount) private pure {
        if (member == address(0)) revert LoyaltyInvalidMember(member);
        if (amount == 0 || amount > PackedAccount.MAX_AMOUNT) revert LoyaltyInvalidAmount(member, amount);
    }

    function _redeemDigest(
        address member,
        uint256 amount,
        uint256 rewardId,
        uint256 ref,
        uint256 nonce,
        uint256 deadline
    ) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REDEEM_TYPEHASH, member, msg.sender, amount, rewardId, ref, nonce, deadline)));
    }

    /// @dev The ECDSA signer of `digest`: a 65-byte (r, s, v) signature or a 64-byte EIP-2098
    /// (r, vs) one; the zero address for anything malformed.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        if (signature.length == 65) {
            (signer,,) = ECDSA.tryRecover(digest, uint8(signature[64]), bytes32(signature[0:32]), bytes32(signature[32:64]));
        } else if (signature.length == 64) {
            (signer,,) = ECDSA.tryRecover(digest, bytes32(signature[0:32]), bytes32(signature[32:64]));
        }
    }

    /// @dev A smart-contract wallet's consent (ERC-1271). Asked only after the ECDSA signer did
    /// not match, so an ordinary wallet's redemption costs no more; a static call, so the wallet
    /// cannot change any state here, with at most `CONSENT_WALLET_GAS`, and only the first 32
    /// bytes of its answer copied (a huge answer costs the caller nothing). As OpenZeppelin's
    /// SignatureChecker, whose 5.4 version pulls in `mcopy`, which Shanghai lacks.
    function _isContractConsent(address member, bytes32 digest, bytes calldata signature) private view returns (bool) {
        if (member.code.length == 0) return false;
        bytes memory query = abi.encodeCall(IERC1271.isValidSignature, (digest, signature));
        bool ok;
        bytes32 answer;
        assembly ("memory-safe") {
            ok := staticcall(CONSENT_WALLET_GAS, member, add(query, 0x20), mload(query), 0x00, 0x20)
            ok := and(ok, gt(returndatasize(), 0x1f))
            answer := mload(0x00)
        }
        return ok && answer == bytes32(IERC1271.isValidSignature.selector);
    }

    function _epochNow() private view returns (uint256) {
        // Cannot underflow: `_startTime` is the deployment block's time; `_epochLength` != 0.
        unchecked {
            return (block.timestamp - _startTime) / _epochLength;
        }
    }

    function _firstLiveEpoch(uint256 nowEpoch) private view returns (uint256) {
        return nowEpoch + 1 > _validityEpochs ? nowEpoch + 1 - _validityEpochs : 0;
    }

    function _isLive(uint256 epoch, uint256 nowEpoch) private view returns (bool) {
        return epoch + _validityEpochs > nowEpoch;
    }

    // ------------------------------------------------------------------------- role overrides

    /// @dev Our error, with the account and role, for every missing role.
    function _checkRole(bytes32 role, address account) internal view override {
        if (!hasRole(role, account)) revert LoyaltyMissingRole(account, role);
    }

    /// @dev An issuer losing its role loses its budget too (`_useBudgetAndRef` relies on it).
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == ISSUER_ROLE && _issuers[account].budget() != 0) {
            _issuers[account] = _issuers[account].withBudget(0);
            emit IssueBudgetSet(account, 0);
        }
    }

    /// @dev The nonce lives in the member's head slot, which a redemption writes anyway.
    function _useNonce(address owner) internal override returns (uint256 current) {
        Account storage account = _accounts[owner];
        uint256 head = account.head;
        current = head.nonce();
        account.head = head.withNextNonce();
    }
}
