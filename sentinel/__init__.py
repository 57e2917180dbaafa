"""Sentinel: a ZKML circuit breaker for DeFi liquidity crashes."""

__version__ = "0.1.0"
