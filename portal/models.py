"""Every table, imported in one place so Alembic sees the whole metadata."""

from portal.audit.models import AuditLog
from portal.competition.models import Competition
from portal.evaluation.models import BatchSubmission, EvaluationBatch, EvaluationRun
from portal.llm.models import LlmUsageLog, LlmUsageRateLimit
from portal.submissions.models import Submission, SubmissionQuota
from portal.teams.models import Team

__all__ = [
    "AuditLog",
    "BatchSubmission",
    "Competition",
    "EvaluationBatch",
    "EvaluationRun",
    "LlmUsageLog",
    "LlmUsageRateLimit",
    "Submission",
    "SubmissionQuota",
    "Team",
]
