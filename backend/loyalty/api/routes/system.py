"""Health and the chain the service writes to."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from loyalty.api.deps import RuntimeDep
from loyalty.api.schemas import ChainPublic, HealthPublic
from loyalty.workers import health as service_health

router = APIRouter(prefix="/v1", tags=["system"])


@router.get("/health", response_model=HealthPublic)
async def health(runtime: RuntimeDep) -> HealthPublic:
    """`ok`, or `degraded` with every reason: the chain unreachable, no outbox writer holding the
    lease (or not seen lately), accepted writes waiting too long, writes failed or dropped in the
    last hour. Needs no key (for load balancers and monitors)."""
    found = await run_in_threadpool(service_health.check, runtime)
    return HealthPublic(**asdict(found))


@router.get("/chain", response_model=ChainPublic)
def chain(runtime: RuntimeDep) -> ChainPublic:
    return ChainPublic(
        chain_id=runtime.chain.chain_id, token_address=runtime.token.address, block_number=runtime.chain.block_number()
    )
