"""What the fetcher tells of config.json fits the termination message, or is left out whole."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from mimo_operator.fetcher.config_report import decode_config, encode_config
from mimo_operator.fetcher.progress import TERMINATION_MESSAGE_LIMIT, FetchProgress, Reporter
from mimo_operator.models.checkpoint import planning_config
from tests.fetcher.hub_server import fine_tune_config


def _final_message(tmp_path: Path, config: str) -> dict[str, object]:
    progress = FetchProgress(repo="example/fine-tune", revision="main", phase="Complete", config=config)
    log = tmp_path / "termination-log"
    Reporter(
        progress, progress_file=tmp_path / "progress.json", termination_log=log, out=io.StringIO()
    ).finish()
    text = log.read_text()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    report: dict[str, object] = json.loads(text)
    return report


def test_a_family_config_travels_whole(tmp_path: Path) -> None:
    report = _final_message(tmp_path, encode_config(fine_tune_config()))
    assert decode_config(str(report["config"])) == planning_config(fine_tune_config())


def test_a_config_too_large_to_tell_is_left_out_not_cut(tmp_path: Path) -> None:
    rng = random.Random(7)
    bloated = {
        **fine_tune_config(),
        "quantization_config": {
            "quant_method": "fp8",
            "ignored_layers": [f"layer.{rng.getrandbits(64):016x}" for _ in range(400)],
        },
    }
    report = _final_message(tmp_path, encode_config(bloated))
    assert "config" not in report
    assert report["phase"] == "Complete"
