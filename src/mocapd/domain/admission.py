"""Admission rules, pure: create-time checks of the request and complete-upload checks of the file.

Each function raises `MocapdError` with the code of SPEC section 4, or returns what was decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mocapd.domain.credits import credits_for_window
from mocapd.domain.plans import ENABLED_TARGETS, EXPORT_FPS_CHOICES, MOCAP_TYPES, PlanLimits
from mocapd.domain.targets import resolve_target
from mocapd.domain.uploads import UploadRules
from mocapd.errors import MocapdError

__all__ = [
    "AccountState",
    "TrimWindow",
    "account_problems",
    "check_account_can_start",
    "check_create",
    "normalise_targets",
    "resolve_trim",
]

# Trim ends a little past the probed duration are rounding, not errors (one frame at 30 fps).
_TRIM_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class AccountState:
    plan: PlanLimits
    active_jobs: int
    available_credits: int


@dataclass(frozen=True)
class TrimWindow:
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def credits(self) -> int:
        return credits_for_window(self.start_s, self.end_s)


def normalise_targets(target_ids: list[str] | None, target_id: str | None, plan: PlanLimits) -> list[str]:
    """Merge the legacy ``targetId``, collapse duplicates (keeping order) and check each target."""
    merged = list(target_ids or [])
    if target_id is not None:
        merged.append(target_id)
    if not merged:
        raise MocapdError("api_target_ids_required", "Give targetIds (or the legacy targetId).", stage="create")
    out: list[str] = []
    for t in merged:
        if t not in out:
            out.append(t)
    for t in out:
        target = resolve_target(t)
        known = t in ENABLED_TARGETS or (target is not None and target.kind.has_ref and target.kind.enabled)
        if not known or not plan.allows_target(t):
            allowed = [x for x in ENABLED_TARGETS if plan.allows_target(x)]
            raise MocapdError(
                "api_target_unsupported",
                f"Target '{t}' is not available on this plan; choose from {', '.join(allowed)}.",
                stage="create",
                details={"targetId": t, "allowed": allowed},
            )
    return out


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise MocapdError("validation_error", f"{name} must be a finite number.", stage="create")


def check_create(
    *,
    plan: PlanLimits,
    export_fps: float,
    mocap_type: str,
    trim_start_s: float,
    trim_end_s: float | None,
    claimed_duration_s: float | None,
    claimed_bytes: int | None,
) -> None:
    """Create-time checks on the request alone (the account checks are `check_account_can_start`)."""
    for name, v in (
        ("exportFps", export_fps),
        ("trimStartSec", trim_start_s),
        ("trimEndSec", trim_end_s),
        ("sourceDurationSec", claimed_duration_s),
    ):
        _finite(name, v)
    if export_fps not in EXPORT_FPS_CHOICES:
        raise MocapdError(
            "export_fps_invalid",
            f"exportFps must be one of {', '.join(map(str, EXPORT_FPS_CHOICES))}.",
            stage="create",
            details={"allowed": list(EXPORT_FPS_CHOICES)},
        )
    if mocap_type not in MOCAP_TYPES:
        raise MocapdError(
            "mocap_type_invalid", "mocapType must be full_body or upper_body.", stage="create",
            details={"allowed": list(MOCAP_TYPES)},
        )
    if claimed_duration_s is not None and claimed_duration_s <= 0:
        raise MocapdError("api_source_duration_invalid", "sourceDurationSec must be greater than 0.", stage="create")
    if trim_start_s < 0:
        raise MocapdError("api_trim_range_invalid", "trimStartSec must not be negative.", stage="create")
    if trim_end_s is not None and trim_end_s <= trim_start_s:
        raise MocapdError("api_trim_range_invalid", "trimEndSec must be after trimStartSec.", stage="create")
    if claimed_duration_s is not None:
        if trim_start_s >= claimed_duration_s:
            raise MocapdError("api_trim_range_invalid", "trimStartSec is past the end of the video.", stage="create")
        if trim_end_s is not None and trim_end_s > claimed_duration_s + _TRIM_TOLERANCE_S:
            raise MocapdError("api_trim_range_invalid", "trimEndSec is past the end of the video.", stage="create")
        end = trim_end_s if trim_end_s is not None else claimed_duration_s
        if end - trim_start_s > plan.max_duration_s:
            raise _duration_error(end - trim_start_s, plan, "create")
    elif trim_end_s is not None and trim_end_s - trim_start_s > plan.max_duration_s:
        raise _duration_error(trim_end_s - trim_start_s, plan, "create")
    if claimed_bytes is not None:
        if claimed_bytes <= 0:
            raise MocapdError("validation_error", "sourceBytes must be greater than 0.", stage="create")
        UploadRules(plan.max_file_bytes, stage="create").check_limit(claimed_bytes)


def _duration_error(seconds: float, plan: PlanLimits, stage: str) -> MocapdError:
    return MocapdError(
        "api_duration_limit_exceeded",
        f"The trimmed clip is {seconds:.2f} s; the {plan.name} plan allows {plan.max_duration_s:g} s.",
        stage=stage,
        details={"limitSec": plan.max_duration_s, "durationSec": round(seconds, 3)},
    )


def account_problems(state: AccountState, credits_needed: int, stage: str) -> list[MocapdError]:
    """Every reason the account cannot start a job of ``credits_needed`` now: plan inactive, no free
    concurrency slot, too few available credits (in that order). Empty when it can."""
    problems: list[MocapdError] = []
    if not state.plan.active:
        problems.append(MocapdError("api_plan_inactive", f"The {state.plan.name} plan is not active.", stage=stage))
    if state.active_jobs >= state.plan.max_active_jobs:
        problems.append(MocapdError(
            "api_concurrency_limit_exceeded",
            f"{state.active_jobs} jobs are active; the plan allows {state.plan.max_active_jobs}.",
            stage=stage,
            details={"limit": state.plan.max_active_jobs},
        ))
    if state.available_credits < credits_needed:
        problems.append(MocapdError(
            "insufficient_api_v_credits",
            f"The clip needs {credits_needed} credit{'' if credits_needed == 1 else 's'}; "
            f"{state.available_credits} {'is' if state.available_credits == 1 else 'are'} available.",
            stage=stage,
            details={"required": credits_needed, "available": state.available_credits},
        ))
    return problems


def check_account_can_start(state: AccountState, credits_needed: int, stage: str) -> None:
    """Raise the first of `account_problems` (plan active, a free concurrency slot, enough credits)."""
    problems = account_problems(state, credits_needed, stage)
    if problems:
        raise problems[0]


def resolve_trim(trim_start_s: float, trim_end_s: float | None, duration_s: float, plan: PlanLimits) -> TrimWindow:
    """The trim window against the real duration, then the plan's duration limit on the trimmed clip."""
    if trim_start_s >= duration_s:
        raise MocapdError(
            "api_trim_range_invalid",
            f"trimStartSec {trim_start_s:g} is past the end of the video ({duration_s:.3f} s).",
            stage="validation",
        )
    if trim_end_s is not None and trim_end_s > duration_s + _TRIM_TOLERANCE_S:
        raise MocapdError(
            "api_trim_range_invalid",
            f"trimEndSec {trim_end_s:g} is past the end of the video ({duration_s:.3f} s).",
            stage="validation",
        )
    end = duration_s if trim_end_s is None else min(trim_end_s, duration_s)
    window = TrimWindow(trim_start_s, end)
    if window.duration_s > plan.max_duration_s + 1e-9:
        raise _duration_error(window.duration_s, plan, "validation")
    return window
