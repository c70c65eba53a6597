"""Health and the chain the service writes to."""

from __future__ import annotations

from fastapi import APIRouter, Request

from loyalty.api.schemas import ChainPublic

router = APIRouter(prefix="/v1", tags=["system"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/chain", response_model=ChainPublic)
def chain(request: Request) -> ChainPublic:
    client = request.app.state.chain
    return ChainPublic(chain_id=client.chain_id, token_address=client.token.address, block_number=client.block_number())
