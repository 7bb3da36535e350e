from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.runbooks.definitions import RunbookError, load_runbook, load_runbooks

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "runbooks" / "revoke-replace-audit-notify.yaml").read_text())


def write(tmp_path: Path, document: dict[str, object], name: str = "revoke-replace-audit-notify") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_shipped_runbooks_load() -> None:
    runbooks = load_runbooks(REPO / "runbooks")
    assert set(runbooks) == {"revoke-replace-audit-notify", "rotate"}
    staged = [name for name, _ in runbooks["revoke-replace-audit-notify"].plan("staged")]
    assert (
        staged.index("verify_new")
        < staged.index("revoke_old")
        < staged.index("verify_revoked")
        < staged.index("cleanup")
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["modes"].update(
                staged=["identify", "mint", "revoke_old", "verify_new", "verify_revoked"]
            ),
            "staged mode never revokes before the replacement is verified",
        ),
        (lambda d: d["modes"].update(emergency=["identify", "revoke_old", "cleanup"]), "cleanup"),
        (lambda d: d["modes"]["staged"].append("nonexistent"), "step nonexistent: not defined"),
        (lambda d: d["steps"]["mint"].update(action="explode"), "steps.mint.action"),
        (lambda d: d["steps"]["mint"].update(retries=-1), "steps.mint.retries"),
        (lambda d: d["steps"]["revoke_old"]["approval"].update(environments=["prod"]), "unknown environment"),
        (lambda d: d.update(default_mode="yolo"), "default_mode"),
        (lambda d: d["steps"]["mint"].update(colour="red"), "steps.mint.colour"),
    ],
)
def test_invalid_definitions_name_file_step_and_reason(tmp_path: Path, change: object, expected: str) -> None:
    document = yaml.safe_load(yaml.safe_dump(BASE))
    change(document)  # type: ignore[operator]
    path = write(tmp_path, document)
    with pytest.raises(RunbookError) as caught:
        load_runbook(path)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_broken_yaml_and_wrong_name(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("steps: [\n")
    with pytest.raises(RunbookError, match="cannot read"):
        load_runbook(bad)
    with pytest.raises(RunbookError, match="must match the file name"):
        load_runbook(write(tmp_path, BASE, name="other"))
    with pytest.raises(RunbookError, match="no runbook definitions"):
        load_runbooks(tmp_path / "empty")
