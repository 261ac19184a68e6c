"""The target and artifact catalogue: every target kind and file named once, read by plans, the API's
result, the worker and the writers."""

from __future__ import annotations

import pytest

from mocapd.domain.plans import ENABLED_TARGETS
from mocapd.domain.targets import (
    JOB_FILES,
    TARGET_KINDS,
    describe_file,
    enabled_target_ids,
    produced_targets,
    resolve_target,
)
from mocapd.formats.writers import WRITERS


def test_the_enabled_targets_are_the_first_release_ones() -> None:
    assert enabled_target_ids() == ENABLED_TARGETS == ("default", "unitree_g1")


@pytest.mark.parametrize(
    ("target_id", "result_type", "url_field", "files"),
    [
        ("default", "fbx", "fbxUrl", ["motion.fbx", "motion.bvh", "motion.glb"]),
        ("unitree_g1", "robot_motion_json", "motionJsonUrl", ["g1_motion.json", "g1_motion.csv"]),
        ("avatar:av_12ab", "fbx", "fbxUrl", ["avatar_av_12ab.fbx", "avatar_av_12ab.glb"]),
    ],
)
def test_each_target_resolves_to_its_result_type_url_field_and_files(
    target_id: str, result_type: str, url_field: str, files: list[str]
) -> None:
    target = resolve_target(target_id)
    assert target is not None
    assert (target.kind.result_type, target.kind.url_field) == (result_type, url_field)
    assert [f.name for f in target.files()] == files and target.main_file == files[0]


@pytest.mark.parametrize("target_id", ["", "avatar", "avatar:", "default:x", "unitree_g2", "robot:unitree_g1"])
def test_unknown_or_malformed_target_ids_resolve_to_nothing(target_id: str) -> None:
    assert resolve_target(target_id) is None


def test_the_skeleton_motion_is_always_delivered_and_others_follow_in_the_job_order() -> None:
    assert [t.id for t in produced_targets(("unitree_g1",))] == ["default", "unitree_g1"]
    assert [t.id for t in produced_targets(("avatar:b", "default", "avatar:a"))] == ["default", "avatar:b", "avatar:a"]


def test_every_file_the_catalogue_names_has_a_writer_and_one_name() -> None:
    names = [f.name for f in JOB_FILES]
    for kind in TARGET_KINDS.values():
        for spec in kind.files:
            assert spec.writer in WRITERS, spec
            names.append(spec.name)
    assert len(names) == len(set(names))


def test_a_bare_file_name_is_described_within_the_jobs_targets() -> None:
    assert describe_file("avatar_av_1.glb", ("default", "avatar:av_1")) == ("avatar:av_1", "model/gltf-binary")
    assert describe_file("avatar_av_1.glb", ("default",)) == (None, "application/octet-stream")
    assert describe_file("notes.txt", ("default",)) == (None, "application/octet-stream")
