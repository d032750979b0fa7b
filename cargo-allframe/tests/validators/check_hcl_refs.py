#!/usr/bin/env python3
"""Checks that every reference in a tree of Terraform modules resolves, offline.

Provider schemas cannot be fetched here, so `terraform validate` is out of reach; this parses
every `.tf` file with python-hcl2 and checks, per module directory:

- each `var.X`, `local.X`, `module.X`, `data.T.N` and `T.N` (resource of the aws, google, fly,
  unleash, launchdarkly and flagsmith providers, or `terraform_data`) reference names a
  variable, local, module call, data source (also one scoped to a `check` block) or resource
  declared in that module;
- each `module` block with a local `source` passes only variables the called module declares,
  and passes every variable that has no default;
- each `module.X.Y` reference names an output of the called module.

Usage: check_hcl_refs.py DIR... ; exits 1 listing every problem, 0 when all references resolve.
"""

import re
import sys
from pathlib import Path

import hcl2

# Expression roots that are not references to declared objects.
BUILTIN_ROOTS = {
    "var", "local", "module", "data", "path", "terraform", "count", "each", "self",
    "true", "false", "null",
}
# Block-local iterators of `dynamic` blocks and `for` expressions are names followed by
# `.key`/`.value`; they are collected per file from the source text.
REFERENCE = re.compile(
    r"(?<![\w.\"-])(var|local|module|data)\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_][\w-]*))?"
    r"|(?<![\w.\"-])((?:aws|google|fly|unleash|launchdarkly|flagsmith)_[a-z0-9_]+|terraform_data)"
    r"\.([A-Za-z_][\w-]*)"
)


# An expression that is one bare word (python-hcl2 returns it without quotes or `${}`):
# Terraform reads it as a reference to nothing.
BARE_WORD = re.compile(r"^(?:\$\{)?([A-Za-z_][\w-]*)\}?$")


def strings(value):
    """Every string inside a parsed HCL value (expressions come back as `${...}` strings)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def values(value, key=None):
    """Every string value (not key); type constraints and lifecycle attribute lists are skipped."""
    if isinstance(value, str):
        if key not in ("type", "ignore_changes"):
            yield value
    elif isinstance(value, dict):
        for child_key, item in value.items():
            yield from values(item, child_key)
    elif isinstance(value, list):
        for item in value:
            yield from values(item, key)


def unquote(name):
    return name.strip('"')


def load(directory):
    """Declarations and raw bodies of the module in `directory`."""
    module = {
        "variables": {}, "locals": set(), "modules": {}, "data": set(), "resources": set(),
        "outputs": set(), "bodies": [],
    }
    for path in sorted(directory.glob("*.tf")):
        with open(path, encoding="utf-8") as handle:
            try:
                parsed = hcl2.load(handle)
            except Exception as error:  # noqa: BLE001 - report any parse failure
                raise SystemExit(f"{path}: does not parse as HCL: {error}")
        for block in parsed.get("variable", []):
            for name, body in block.items():
                module["variables"][unquote(name)] = body
        for block in parsed.get("locals", []):
            module["locals"].update(unquote(k) for k in block)
        for block in parsed.get("module", []):
            for name, body in block.items():
                module["modules"][unquote(name)] = body
        # Data sources, including those scoped to a `check` block (visible in its assertions).
        scoped = [
            data
            for check in parsed.get("check", [])
            for body in check.values()
            if isinstance(body, dict)
            for data in body.get("data", [])
        ]
        for block in parsed.get("data", []) + scoped:
            for kind, named in block.items():
                for name in named:
                    module["data"].add((unquote(kind), unquote(name)))
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name in named:
                    module["resources"].add((unquote(kind), unquote(name)))
        for block in parsed.get("output", []):
            module["outputs"].update(unquote(k) for k in block)
        module["bodies"].append((path, parsed))
    return module


def check(directory, cache, problems):
    module = cache.setdefault(directory, load(directory))
    for path, parsed in module["bodies"]:
        for text in values(parsed):
            bare = BARE_WORD.match(text)
            if bare and bare.group(1) not in ("true", "false", "null"):
                problems.append(f"{path}: `{bare.group(1)}` is a bare word, not a value (quote it)")
        for text in strings(parsed):
            for match in REFERENCE.finditer(text):
                root, name, attribute, kind, resource = match.groups()
                where = f"{path}: `{match.group(0)}`"
                if root == "var" and name not in module["variables"]:
                    problems.append(f"{where}: no variable `{name}`")
                elif root == "local" and name not in module["locals"]:
                    problems.append(f"{where}: no local `{name}`")
                elif root == "data" and (name, attribute) not in module["data"]:
                    problems.append(f"{where}: no data source `{name}.{attribute}`")
                elif root == "module":
                    call = module["modules"].get(name)
                    if call is None:
                        problems.append(f"{where}: no module `{name}`")
                    elif attribute is not None:
                        called = called_module(directory, call)
                        if called is not None:
                            outputs = cache.setdefault(called, load(called))["outputs"]
                            if attribute not in outputs:
                                problems.append(f"{where}: module `{name}` has no output `{attribute}`")
                elif kind is not None and (kind, resource) not in module["resources"]:
                    problems.append(f"{where}: no resource `{kind}.{resource}`")
    for name, call in module["modules"].items():
        called = called_module(directory, call)
        if called is None:
            continue
        if not called.is_dir():
            problems.append(f"{directory}: module `{name}`: source {called} does not exist")
            continue
        declared = cache.setdefault(called, load(called))["variables"]
        meta = {"source", "providers", "depends_on", "count", "for_each", "version", "__is_block__"}
        passed = {key for key in call if key not in meta}
        for extra in sorted(passed - set(declared)):
            problems.append(f"{directory}: module `{name}` passes `{extra}`, which {called} does not declare")
        for required in sorted(k for k, body in declared.items() if "default" not in body):
            if required not in passed:
                problems.append(f"{directory}: module `{name}` does not pass the required `{required}`")


def called_module(directory, call):
    source = call.get("source")
    if isinstance(source, str) and unquote(source).startswith("."):
        return (directory / unquote(source)).resolve()
    return None


def main(roots):
    if not roots:
        raise SystemExit("usage: check_hcl_refs.py DIR...")
    problems, cache, checked = [], {}, 0
    for root in roots:
        for directory in sorted({p.parent.resolve() for p in Path(root).rglob("*.tf")}):
            check(directory, cache, problems)
            checked += 1
    if checked == 0:
        raise SystemExit("no Terraform module found under " + " ".join(roots))
    for problem in problems:
        print(problem)
    print(f"{checked} modules, {len(problems)} unresolved references")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
