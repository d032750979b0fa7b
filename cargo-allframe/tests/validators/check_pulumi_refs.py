#!/usr/bin/env python3
"""Checks the Pulumi YAML programs of a tree with PyYAML, a parser independent of the Rust tests.

For each `Pulumi.yaml` under the given directories:

- the document parses, has `runtime: yaml` and only the sections Pulumi YAML reads (`name`,
  `runtime`, `description`, `config`, `variables`, `resources`, `outputs`);
- each resource has a `type` of the form `package:module:Type`, and only `type`, `properties`
  and `options`;
- each `${...}` interpolation in `variables`, `resources` and `outputs` (`$${` is a literal)
  starts with a declared resource, variable or config key, or `pulumi`;
- the `config` declarations hold no interpolation, and every value of a stack file
  `Pulumi.<stack>.yaml` beside it is a declared key of the project (or
  `pulumi:disable-default-providers`).

Usage: check_pulumi_refs.py DIR... ; exits 1 listing every problem, 0 when all resolve.
"""

import re
import sys
from pathlib import Path

import yaml

SECTIONS = {"name", "runtime", "description", "config", "variables", "resources", "outputs"}
TYPE = re.compile(r"^(?:[a-z0-9-]+:[A-Za-z0-9./-]+:[A-Z][A-Za-z0-9]*|pulumi:providers:[a-z0-9-]+)$")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z0-9_-]+)[^}]*\}")


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)


def check(path: Path) -> list[str]:
    problems = []
    program = yaml.safe_load(path.read_text())
    if not isinstance(program, dict):
        return [f"{path}: not a mapping"]
    extra = set(program) - SECTIONS
    if extra:
        problems.append(f"{path}: unknown sections {sorted(extra)}")
    if program.get("runtime") != "yaml":
        problems.append(f"{path}: runtime is not yaml")
    config = program.get("config") or {}
    for key, declaration in config.items():
        if any(INTERPOLATION.search(s) for s in strings(declaration)):
            problems.append(f"{path}: config {key} holds an interpolation")
    resources = program.get("resources") or {}
    declared = set(resources) | set(program.get("variables") or {}) | set(config) | {"pulumi"}
    for name, resource in resources.items():
        if not TYPE.match(str(resource.get("type", ""))):
            problems.append(f"{path}: {name} has the type {resource.get('type')!r}")
        if set(resource) - {"type", "properties", "options"}:
            problems.append(f"{path}: {name} has {sorted(resource)}")
    for section in ("variables", "resources", "outputs"):
        for text in strings(program.get(section) or {}):
            for root in INTERPOLATION.findall(text):
                if root not in declared:
                    problems.append(f"{path}: {text!r} refers to {root!r}, declared nowhere")
    project = program.get("name")
    for stack in path.parent.glob("Pulumi.*.yaml"):
        values = (yaml.safe_load(stack.read_text()) or {}).get("config") or {}
        for key in values:
            if key == "pulumi:disable-default-providers":
                continue
            namespace, _, name = key.partition(":")
            if namespace != project or name not in config:
                problems.append(f"{stack}: {key} is not a config key of {project}")
    return problems


def main() -> int:
    problems = []
    programs = [p for d in sys.argv[1:] for p in sorted(Path(d).rglob("Pulumi.yaml"))]
    for path in programs:
        problems.extend(check(path))
    for problem in problems:
        print(problem)
    if not programs:
        print("no Pulumi.yaml found")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
