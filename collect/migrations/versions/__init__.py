"""One module per ledger schema revision, oldest first; never edit one that has been released."""
