"""Evidence (log Z) estimates from a fitted q."""

from vifit.evidence.importance import ISEstimate, Verdict, importance_log_z, khat_verdict

__all__ = ["ISEstimate", "Verdict", "importance_log_z", "khat_verdict"]
