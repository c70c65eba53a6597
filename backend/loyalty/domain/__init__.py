"""Pure rules: no database, chain or web framework here (the import contracts in pyproject.toml
check it), so each rule has a unit test that needs nothing running."""
