"""The auditor: re-derives the program from the chain alone (`verify`) and holds the backend's
database up against it (`reconcile`).

`rpc` reads the chain through raw JSON-RPC batches, `events` decodes the token's logs, `ledger`
replays them into balances and per-issuer figures, `verify` checks those against the contract
and `report` writes them out.
"""
