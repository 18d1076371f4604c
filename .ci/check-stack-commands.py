"""The READMEs' stack commands against template.yaml ("the README's stack commands match the template's
parameters"). Every `Name=value` after `--parameter-overrides`, and every `Name=value` in inline code whose Name is
CamelCase, must name a template parameter; every deploy command must give every parameter that has no default.
Each README must hold a deploy command; the pages after `--` (docs) need not.

    python3 .ci/check-stack-commands.py template.yaml README.md README.ko.md -- docs/deploy.md
"""

import re
import sys

import yaml


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) as plain values: only Parameters matter here."""


TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)

OVERRIDE = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9]*)=")
INLINE = re.compile(r"`([^`\n]*)`")
CAMEL = re.compile(r"(?:^|\s)([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+)=")


def commands(markdown):
    """Each shell command in a fenced block, its continuation lines joined."""
    in_block = False
    current = ""
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
            current = ""
            continue
        if not in_block:
            continue
        text = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        current += " " + text.strip().rstrip("\\")
        if not text.rstrip().endswith("\\"):
            if current.strip():
                yield current.strip()
            current = ""


def main():
    template_path, *paths = sys.argv[1:]
    readmes = paths[: paths.index("--")] if "--" in paths else paths
    docs = paths[paths.index("--") + 1 :] if "--" in paths else []
    with open(template_path, encoding="utf-8") as f:
        parameters = yaml.load(f, Loader=TemplateLoader)["Parameters"]
    required = {name for name, spec in parameters.items() if "Default" not in spec}
    problems = []
    for path in readmes + docs:
        with open(path, encoding="utf-8") as f:
            markdown = f.read()
        deploys = 0
        for command in commands(markdown):
            if "--parameter-overrides" not in command:
                continue
            given = set(OVERRIDE.findall(command.split("--parameter-overrides", 1)[1]))
            for name in sorted(given - parameters.keys()):
                problems.append(f"{path}: a deploy command sets {name}, which template.yaml does not have")
            for name in sorted(required - given):
                problems.append(f"{path}: a deploy command lacks {name}, which template.yaml requires")
            deploys += 1
        if deploys == 0 and path in readmes:
            problems.append(f"{path}: no deploy command with --parameter-overrides")
        for code in INLINE.findall(markdown):
            for name in CAMEL.findall(code):
                if name not in parameters:
                    problems.append(f"{path}: `{code}` names {name}, which template.yaml does not have")
        print(f"{path}: {deploys} deploy commands checked against {len(parameters)} parameters")
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
