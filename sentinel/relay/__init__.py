"""The relay daemon: follow a feed, prove each new window, attest, submit, confirm (issue 6)."""
