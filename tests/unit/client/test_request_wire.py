"""What `mocapd submit` sends: the options a person picked, and nothing for the ones left at their default."""

from __future__ import annotations

from mocapd.client.flow import JobRequest


def test_quality_is_sent_only_when_asked() -> None:
    plain = JobRequest().to_wire("a.mp4", 10, "0" * 64)
    assert "modelQuality" not in plain
    high = JobRequest(model_quality="high", target_ids=("default", "default", "unitree_g1")).to_wire("a.mp4", 10, "0" * 64)
    assert high["modelQuality"] == "high" and high["targetIds"] == ["default", "unitree_g1"]


def test_hands_are_sent_only_when_asked() -> None:
    assert "handTracking" not in JobRequest().to_wire("a.mp4", 10, "0" * 64)
    assert JobRequest(hand_tracking=True).to_wire("a.mp4", 10, "0" * 64)["handTracking"] is True
