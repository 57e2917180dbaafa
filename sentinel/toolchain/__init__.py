"""The pinned npm toolchain (node, solc, anvil): a leaf that imports nothing else from Sentinel but its errors."""
