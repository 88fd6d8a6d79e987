"""One file per schema revision, oldest first; each is frozen once released."""
