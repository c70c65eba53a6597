"""The backend's database: partners, members, catalog, redemptions, idempotency and the outbox."""
