"""Health and the chain the service writes to."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from loyalty import health as service_health
from loyalty.api.schemas import ChainPublic, HealthPublic

router = APIRouter(prefix="/v1", tags=["system"])


@router.get("/health", response_model=HealthPublic)
async def health(request: Request) -> HealthPublic:
    """`ok`, or `degraded` with every reason: the chain unreachable, no outbox writer holding the
    lease (or not seen lately), accepted writes waiting too long, writes failed or dropped in the
    last hour. Needs no key (for load balancers and monitors)."""
    found = await run_in_threadpool(service_health.check, request.app.state.runtime)
    return HealthPublic(**asdict(found))


@router.get("/chain", response_model=ChainPublic)
def chain(request: Request) -> ChainPublic:
    client = request.app.state.chain
    return ChainPublic(chain_id=client.chain_id, token_address=client.token.address, block_number=client.block_number())
