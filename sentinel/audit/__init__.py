"""Independent audit of a deployed breaker from public data: chain, published artifacts, archived rows."""
