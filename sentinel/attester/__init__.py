"""One independent attester party as a service: its own key, its own feed copy, its own signing record.

An attester signs the EIP-712 attestation of a window only after recomputing
the window's Poseidon input hash from its own rows, and never signs two
different hashes (or ends) for one window. :mod:`.record` keeps the record,
:mod:`.service` decides, :mod:`.server` speaks HTTP (``sentinel attester serve``).
"""
