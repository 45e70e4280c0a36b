"""`python -m core.training.ship`: a run's model into a shipped folder, never over the run itself."""

from __future__ import annotations

from pathlib import Path

from core.jsonfiles import sha256_file
from core.training.ship import main


def test_shipping_a_run_into_itself_or_onto_a_file_is_refused_and_changes_nothing(tiny_gan, tmp_path, capsys):
    before = {p.name: sha256_file(p) for p in Path(tiny_gan).iterdir()}
    assert main([str(tiny_gan), str(tiny_gan)]) == 2   # it once replaced the run's float32 weights by float16
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is the run itself; ship into another folder" in err
    assert {p.name: sha256_file(p) for p in Path(tiny_gan).iterdir()} == before
    target = tmp_path / "a_file"
    target.write_text("x")
    assert main([str(tiny_gan), str(target)]) == 2 and "is a file" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), str(tmp_path / "dest")]) == 2
    assert capsys.readouterr().err.startswith("ship: error: ") and not (tmp_path / "dest").exists()
    assert main([str(tiny_gan), str(tmp_path / "dest")]) == 0 and (tmp_path / "dest" / "MODEL_CARD.md").is_file()
