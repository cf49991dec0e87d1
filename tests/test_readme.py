"""The README's two commands are exactly what .ci/run executes; its Python example runs as written."""

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    install_and_run, tests = blocks[0].strip(), blocks[1].strip()
    assert "sslab train" in install_and_run and "pytest" in tests
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install_and_run in ci and tests in ci
    assert ci.index(install_and_run) < ci.index(tests)


def test_readme_python_example_runs_as_written():
    """The README's Python block, executed unchanged: one epoch of BYOL on the 8x8 digits through ``sslab.step``."""
    readme = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)\n```", readme, flags=re.S)
    assert "sslab.step(" in code and "configure_schedule(" in code
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    method, out = namespace["method"], namespace["out"]
    assert namespace["step"] + 1 == len(namespace["batches"]) == 11 == method.total_steps  # the comment's count
    assert torch.isfinite(out.loss) and out.features.shape == (128, method.feature_dim)
