"""Chain: Solidity compilation (npm solc), local Anvil, deployment, transactions."""
