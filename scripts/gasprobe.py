from brownie import LoyaltyPoints, BaselinePoints, accounts, chain
def main():
    admin, issuer = accounts[0], accounts[1]
    t = LoyaltyPoints.deploy("Loyalty Points", "LP", admin, 30*86400, 12, {"from": admin})
    t.grantRole(t.ISSUER_ROLE(), issuer, {"from": admin}); t.setIssueBudget(issuer, 10**30, {"from": admin})
    b = BaselinePoints.deploy(admin, {"from": admin})
    m = [accounts.add().address for _ in range(101)]
    tx = t.earn(m[0], 100, 1, {"from": issuer}); print("earn_new", tx.gas_used)
    tx = t.earn(m[0], 100, 2, {"from": issuer}); print("earn_existing", tx.gas_used)
    tx = b.mint(m[0], 100, {"from": admin}); print("base new", tx.gas_used)
    tx = b.mint(m[0], 100, {"from": admin}); print("base existing", tx.gas_used)
    ms = m[1:]
    tx = t.earnBatch(ms, [100]*100, 3, {"from": issuer}); print("batch new", tx.gas_used/100)
    tx = t.earnBatch(ms, [100]*100, 4, {"from": issuer}); print("batch ex", tx.gas_used/100)
    tx = b.mintBatch(ms, [100]*100, {"from": admin}); print("bbatch new", tx.gas_used/100)
    tx = b.mintBatch(ms, [100]*100, {"from": admin}); print("bbatch ex", tx.gas_used/100)
    print(t.balanceOf(m[0]), t.totalSupply(), t.lotsOf(m[0]))
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    acct = Account.create()
    t.earn(acct.address, 1000, 10, {"from": issuer})
    def sign(amount, reward, ref, deadline):
        data = {"types": {"EIP712Domain": [{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],
            "Redeem": [{"name":"member","type":"address"},{"name":"issuer","type":"address"},{"name":"amount","type":"uint256"},{"name":"rewardId","type":"uint256"},{"name":"ref","type":"uint256"},{"name":"nonce","type":"uint256"},{"name":"deadline","type":"uint256"}]},
            "primaryType": "Redeem", "domain": {"name": "Loyalty Points", "version": "1", "chainId": chain.id, "verifyingContract": t.address},
            "message": {"member": acct.address, "issuer": issuer.address, "amount": amount, "rewardId": reward, "ref": ref, "nonce": t.nonces(acct.address), "deadline": deadline}}
        return Account.sign_message(encode_typed_data(full_message=data), acct.key).signature
    for ref in (11, 12):
        tx = t.redeem(acct.address, 100, 7, ref, 2**40, sign(100, 7, ref, 2**40), {"from": issuer}); print("redeem", tx.gas_used)
    print(t.balanceOf(acct.address))
