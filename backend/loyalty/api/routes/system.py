"""Health, the chain the service writes to, and who a key or session belongs to."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from loyalty.api.deps import Principal, RuntimeDep, require
from loyalty.api.schemas import ChainPublic, HealthPublic, WhoAmI
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


@router.get("/whoami", response_model=WhoAmI)
async def whoami(principal: Annotated[Principal, require("admin", "partner", "auditor", "member")]) -> WhoAmI:
    """Who the bearer key or session belongs to: its role, and its partner or member (the web
    console shows each role its own pages from this)."""
    return WhoAmI(role=principal.role, partner_id=principal.partner_id, member_id=principal.member_id)
