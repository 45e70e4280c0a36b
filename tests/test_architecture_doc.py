"""docs/ARCHITECTURE.md names every module of `core` and `inpaint_gui`, so a newcomer finds each one there."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_and_package_is_in_the_architecture_doc() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = [p for package in ("core", "inpaint_gui") for p in (ROOT / package).iterdir()
               if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()]
    assert len(modules) > 30
    missing = [p.relative_to(ROOT).as_posix() for p in modules
               if f"`{p.relative_to(ROOT).as_posix()}{'/' if p.is_dir() else ''}`" not in text]
    assert not missing, f"not in docs/ARCHITECTURE.md: {missing}"
