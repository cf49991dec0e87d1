"""The README's two commands are exactly what .ci/run executes."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    install_and_run, tests = blocks[0].strip(), blocks[1].strip()
    assert "sslab train" in install_and_run and "pytest" in tests
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install_and_run in ci and tests in ci
    assert ci.index(install_and_run) < ci.index(tests)
