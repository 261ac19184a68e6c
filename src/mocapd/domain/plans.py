"""Plans and their limits (SPEC section 6), and the targets the service can produce."""

from __future__ import annotations

from dataclasses import dataclass

from mocapd.domain.targets import enabled_target_ids

__all__ = ["DEFAULT_PLANS", "ENABLED_TARGETS", "EXPORT_FPS_CHOICES", "MOCAP_TYPES", "MODEL_QUALITIES", "PlanLimits",
           "plan_options"]

ENABLED_TARGETS: tuple[str, ...] = enabled_target_ids()  # the catalogue's (`mocapd.domain.targets`)
EXPORT_FPS_CHOICES: tuple[int, ...] = (24, 30, 60, 120)
MOCAP_TYPES: tuple[str, ...] = ("full_body", "upper_body")
MODEL_QUALITIES: tuple[str, ...] = ("standard", "high")
# Job options a plan may include (SPEC section 16): "model_high" = modelQuality "high", "hands" = handTracking


@dataclass(frozen=True)
class PlanLimits:
    name: str
    max_active_jobs: int
    max_duration_s: float
    max_file_bytes: int
    allowed_targets: tuple[str, ...]  # ("*",) = every enabled target
    retention_days: int
    queue_weight: int
    active: bool = True
    options: tuple[str, ...] = ()  # job options the plan includes ("model_high")
    max_avatar_bytes: int = 100 * 1000 * 1000  # an avatar's model file (SPEC 12)
    rate_limit_rps: float = 20.0  # API requests a second per key (token bucket refill)
    rate_limit_burst: int = 40  # the bucket's size

    def allows_target(self, target_id: str) -> bool:
        return "*" in self.allowed_targets or target_id in self.allowed_targets

    def allows_option(self, option: str) -> bool:
        return option in self.options


_MB = 1000 * 1000
DEFAULT_PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits("free", 2, 30.0, 50 * _MB, ("default", "unitree_g1"), 7, 1),
    "starter": PlanLimits("starter", 4, 120.0, 500 * _MB, ("*",), 14, 2, options=("model_high", "hands")),
    "premium": PlanLimits("premium", 8, 600.0, 2000 * _MB, ("*",), 30, 4, options=("model_high", "hands")),
}


def plan_options(name: str) -> tuple[str, ...]:
    """The job options of a plan, by name (plans are the three above; an unknown name has none)."""
    plan = DEFAULT_PLANS.get(name)
    return plan.options if plan is not None else ()
