"""Feedback: the confirmed diagnosis for an earlier prediction, joined to it in the audit log."""

from typing import Annotated

from fastapi import APIRouter, Depends

from carelens.serve.auth import Principal
from carelens.serve.deps import ServicesDep, in_thread, principal
from carelens.serve.errors import ERROR_RESPONSES, ApiError
from carelens.serve.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("", response_model=FeedbackResponse, responses=ERROR_RESPONSES)
async def feedback(body: FeedbackRequest, svc: ServicesDep,
                   who: Annotated[Principal, Depends(principal)]) -> FeedbackResponse:
    fid = await in_thread(lambda: svc.log.add_feedback(body.prediction_id, body.diagnosis, body.note, who.key_id))
    if fid is None:
        raise ApiError(404, "unknown_prediction", f"no prediction with id {body.prediction_id!r}")
    return FeedbackResponse(feedback_id=fid, prediction_id=body.prediction_id)
