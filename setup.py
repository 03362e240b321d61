"""Build hook: ship the repo-root registry.yaml inside the wheel as posezoo/registry.yaml.

registry.yaml stays the one source of truth at the top of the repo; an editable install reads it there.
Everything else about the package lives in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithRegistry(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "posezoo" / "registry.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / "registry.yaml", target)


setup(
    cmdclass={"build_py": BuildPyWithRegistry},
    # plugins/ is the import package posezoo_plugins (package-dir mapping in pyproject.toml)
    packages=find_packages(include=["posezoo", "posezoo.*"])
    + ["posezoo_plugins"]
    + [f"posezoo_plugins.{p}" for p in find_packages("plugins")],
)
