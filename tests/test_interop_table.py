"""README's compatibility table names exactly the upstream releases the interop tests run."""
from __future__ import annotations

import importlib.metadata

import upstream_harness as up


def table_rows() -> dict[str, list[str]]:
    text = (up.REPO / "README.md").read_text()
    section = text.split("### Compatibility", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[0] not in ("upstream",):
            rows[cells[0]] = [v.strip() for v in cells[1].split(",")]
        elif rows and not line.startswith("|"):
            break
    return rows


def test_readme_compatibility_table_matches_the_pins():
    rows = table_rows()
    assert rows["OpenRLHF (recipe flags)"] == list(up.PINS.OPENRLHF)  # tests/test_interop_openrlhf.py parametrize
    assert rows["OpenRLHF (whole-batch reward)"] == list(up.PINS.OPENRLHF_WHOLE_BATCH)
    assert rows["OpenRLHF (per-sample reward)"] == list(up.PINS.OPENRLHF_PER_SAMPLE)
    assert set(up.PINS.OPENRLHF_WHOLE_BATCH + up.PINS.OPENRLHF_PER_SAMPLE) <= set(up.PINS.OPENRLHF)
    assert rows["verl"] == list(up.PINS.VERL)
    assert rows["TRL"] == [importlib.metadata.version("trl")]
    for name, versions in up.PINS.PINS.items():  # every pinned release is installed where the tests look
        for v in versions:
            assert (up.release(name, v) / ".complete").is_file()
