"""Background work: the outbox writer (the one process that sends transactions), its lease, and
the health read model built on both."""
