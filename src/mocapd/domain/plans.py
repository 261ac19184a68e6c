"""Plans and their limits (SPEC section 6), and the targets the service can produce."""

from __future__ import annotations

from dataclasses import dataclass

from mocapd.domain.targets import enabled_target_ids

__all__ = ["DEFAULT_PLANS", "ENABLED_TARGETS", "EXPORT_FPS_CHOICES", "MOCAP_TYPES", "PlanLimits"]

ENABLED_TARGETS: tuple[str, ...] = enabled_target_ids()  # the catalogue's (`mocapd.domain.targets`)
EXPORT_FPS_CHOICES: tuple[int, ...] = (24, 30, 60, 120)
MOCAP_TYPES: tuple[str, ...] = ("full_body", "upper_body")


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

    def allows_target(self, target_id: str) -> bool:
        return "*" in self.allowed_targets or target_id in self.allowed_targets


_MB = 1000 * 1000
DEFAULT_PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits("free", 2, 30.0, 50 * _MB, ("default", "unitree_g1"), 7, 1),
    "starter": PlanLimits("starter", 4, 120.0, 500 * _MB, ("*",), 14, 2),
    "premium": PlanLimits("premium", 8, 600.0, 2000 * _MB, ("*",), 30, 4),
}
