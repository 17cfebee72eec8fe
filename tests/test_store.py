"""The results index survives a crash that cut its last line: reported, skipped, and appended after cleanly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from peftport.experiments.store import INDEX_FILE, TornRecordWarning, append_index, read_index


def test_a_cut_last_line_is_reported_with_its_number_and_the_next_record_starts_a_fresh_line(tmp_path):
    index = tmp_path / INDEX_FILE
    whole = json.dumps({"id": "baseline-a", "score": 1})
    index.write_text(whole + "\n" + '{"id": "transferred-b", "sco')  # the process died mid-write
    with pytest.warns(TornRecordWarning, match=rf"{INDEX_FILE}:2: not a whole record"):
        assert [r["id"] for r in read_index(tmp_path)] == ["baseline-a"]
    append_index(tmp_path, {"id": "transferred-b", "score": 2})
    lines = index.read_text().splitlines()
    assert lines[0] == whole and lines[1] == '{"id": "transferred-b", "sco' and json.loads(lines[2])["score"] == 2
    with pytest.warns(TornRecordWarning, match=":2:"):
        assert [r["id"] for r in read_index(tmp_path)] == ["baseline-a", "transferred-b"]


def test_whole_records_read_without_warnings(tmp_path, recwarn):
    append_index(tmp_path, {"id": "x"})
    append_index(tmp_path, {"id": "y"})
    assert [r["id"] for r in read_index(tmp_path)] == ["x", "y"] and len(recwarn) == 0


def test_report_names_the_cut_line_in_one_line(tmp_path):
    (tmp_path / INDEX_FILE).write_text('{"id": "teacher-a", "ki')
    done = subprocess.run(
        [sys.executable, "-m", "peftport.cli.main", "report", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert f"warning: {tmp_path / INDEX_FILE}:1: not a whole record (cut by a crash?), skipped\n" in done.stderr


def test_a_run_recorded_twice_counts_once_with_its_last_record(tmp_path, recwarn):
    append_index(tmp_path, {"id": "teacher-a", "score": 1})  # shared without its directory: trained again
    append_index(tmp_path, {"id": "baseline-b", "score": 2})
    append_index(tmp_path, {"id": "teacher-a", "score": 3})
    assert read_index(tmp_path) == [{"id": "teacher-a", "score": 3}, {"id": "baseline-b", "score": 2}]
    assert len(recwarn) == 0


def test_a_line_that_is_json_but_no_record_is_skipped_with_a_warning(tmp_path):
    (tmp_path / INDEX_FILE).write_text('{"id": "x"}\n3\n{"score": 1}\n')
    with pytest.warns(TornRecordWarning) as caught:  # both lines: the assertion below names them
        assert [r["id"] for r in read_index(tmp_path)] == ["x"]
    assert [str(w.message).split(INDEX_FILE)[1][:3] for w in caught] == [":2:", ":3:"]
