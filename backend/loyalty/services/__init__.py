"""Use cases, one module per aggregate, each in the caller's unit of work (`uow.UnitOfWork`):
they check the program's rules (from `domain`), write rows and queue chain writes in the outbox;
they never send a transaction themselves."""
