"""template.yaml resolved the way CloudFormation resolves it for one stack: the parameters
checked against their AllowedPattern / AllowedValues / MinValue / MaxValue and filled with
their defaults, the conditions, the intrinsic functions (Ref, Fn::If, Fn::Sub, Fn::Join,
Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::Split, Fn::Select, Fn::FindInMap, Fn::ForEach of
AWS::LanguageExtensions) and the pseudo parameters (AWS::StackName, AWS::Region,
AWS::AccountId, AWS::Partition). A resource whose condition is false is not created.

What the tests read from it is what the deployed function gets: its environment
(``Stack.environment``, variables CloudFormation leaves out with AWS::NoValue absent) and the
event each Scheduler schedule sends (``Stack.events``). References to resources (Ref of a
resource, Fn::GetAtt) stay readable strings (``Ref:Name``, ``GetAtt:Name.Attr``).

Run as a script, it prints docs/deploy.md's parameter table from the template, or with
``--write`` puts it in that page: ``.venv/bin/python -m tests.template_render --write``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from samcli.yamlhelper import yaml_parse  # type: ignore[import-untyped]

ROOT: Final = Path(__file__).resolve().parents[1]
TEMPLATE: Final = ROOT / "template.yaml"
ACCOUNT: Final = "123456789012"

_NO_VALUE: Final = object()
_SUB_NAME = re.compile(r"\$\{([^}!]+)\}")


class ParameterError(ValueError):
    """A parameter value CloudFormation would refuse (the stack is not created)."""


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def check_parameter(template: dict[str, Any], name: str, value: str) -> None:
    """Raise ``ParameterError`` when CloudFormation would refuse ``value`` for ``name``."""
    spec = template["Parameters"][name]
    kind = spec["Type"]
    if kind == "Number":
        try:
            number = float(value)
        except ValueError:
            raise ParameterError(f"{name}: {value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise ParameterError(f"{name}: {value} is below {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise ParameterError(f"{name}: {value} is above {spec['MaxValue']}")
    items = [value] if kind != "CommaDelimitedList" else value.split(",")
    for item in items:
        allowed = spec.get("AllowedValues")
        if allowed is not None and item not in [str(a) for a in allowed]:
            raise ParameterError(f"{name}: {item!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        # CloudFormation matches the whole value (Java regular expressions; the template's
        # patterns use only what Python's re reads the same way).
        if pattern is not None and re.fullmatch(pattern, item) is None:
            raise ParameterError(f"{name}: {item!r} does not match {pattern}")
        if "MaxLength" in spec and len(item) > int(spec["MaxLength"]):
            raise ParameterError(f"{name}: longer than {spec['MaxLength']}")


def expand_language_extensions(template: dict[str, Any]) -> dict[str, Any]:
    """What AWS::LanguageExtensions does before the SAM transform, for this template: its
    Fn::ForEach loops (over literal lists) written out. The result is what SAM's translator
    takes."""
    out = dict(template)
    expander = _Resolver(template, {})
    for section in ("Conditions", "Resources", "Outputs"):
        if section in template:
            out[section] = expander.expand_for_each(template[section])
    transforms = template.get("Transform")
    if isinstance(transforms, list):
        remaining = [name for name in transforms if name != "AWS::LanguageExtensions"]
        out["Transform"] = remaining[0] if len(remaining) == 1 else remaining
    return out


@dataclass
class Stack:
    name: str
    region: str
    parameters: dict[str, Any]
    resources: dict[str, Any]

    @property
    def function(self) -> dict[str, Any]:
        (function,) = (
            resource
            for resource in self.resources.values()
            if resource["Type"] == "AWS::Serverless::Function"
        )
        properties: dict[str, Any] = function["Properties"]
        return properties

    @property
    def environment(self) -> dict[str, str]:
        """The function's environment as Lambda would hold it: every value a string."""
        variables = self.function.get("Environment", {}).get("Variables", {})
        return {name: _as_text(value) for name, value in variables.items()}

    @property
    def schedules(self) -> dict[str, dict[str, Any]]:
        return {
            name: resource["Properties"]
            for name, resource in self.resources.items()
            if resource["Type"] == "AWS::Scheduler::Schedule"
        }

    @property
    def events(self) -> list[dict[str, Any]]:
        """Each schedule's Input, parsed as the function receives it, by shard."""
        events = [json.loads(s["Target"]["Input"]) for s in self.schedules.values()]
        return sorted(events, key=lambda event: (event.get("shard", 0), json.dumps(event)))


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(
    parameters: dict[str, str] | None = None,
    *,
    stack_name: str = "mm",
    region: str = "eu-west-1",
    account: str = ACCOUNT,
    template: dict[str, Any] | None = None,
) -> Stack:
    """The stack created from the template with these parameter values (the others at
    their defaults). Raises ``ParameterError`` for a value CloudFormation would refuse."""
    template = template if template is not None else load_template()
    given = dict(parameters or {})
    unknown = set(given) - set(template["Parameters"])
    if unknown:
        raise ParameterError(f"not parameters of the template: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        if name in given:
            value = given[name]
        elif "Default" in spec:
            value = _as_text(spec["Default"])
        else:
            raise ParameterError(f"{name}: no value and no default")
        check_parameter(template, name, value)
        values[name] = (
            [item for item in value.split(",") if item]
            if spec["Type"] == "CommaDelimitedList"
            else value
        )
    values.update(
        {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
    )
    resolver = _Resolver(template, values)
    resources_in = resolver.expand_for_each(template["Resources"])
    kept = {
        name: resource
        for name, resource in resources_in.items()
        if "Condition" not in resource
        or resolver.condition(resolver.resolve(resource["Condition"]))
    }
    resources: dict[str, Any] = resolver.resolve(kept)
    return Stack(stack_name, region, values, resources)


class _Resolver:
    def __init__(self, template: dict[str, Any], values: dict[str, Any]) -> None:
        self.template = template
        self.values = values
        self.conditions = self.expand_for_each(template.get("Conditions", {}))
        self._known: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._known:
            self._known[name] = bool(self.resolve(self.conditions[name]))
        return self._known[name]

    def expand_for_each(self, section: dict[str, Any]) -> dict[str, Any]:
        """Fn::ForEach::Name: [Identifier, Collection, {OutputKey: OutputValue}]: one copy of
        the output per item, ${Identifier} and &{Identifier} replaced in keys and Subs."""
        out: dict[str, Any] = {}
        for key, value in section.items():
            if not key.startswith("Fn::ForEach::"):
                out[key] = value
                continue
            identifier, collection, outputs = value
            items = self.resolve(collection)
            for item in items:
                for output_key, output in outputs.items():
                    replaced = _replace_identifier({output_key: output}, identifier, _as_text(item))
                    out.update(self.expand_for_each(replaced))
        return out

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            handler = getattr(self, "_" + key.replace("::", "_").replace("Fn_", ""), None)
            if key in ("Ref", "Condition") or key.startswith("Fn::"):
                if handler is None:
                    raise NotImplementedError(f"template_render: {key}")
                return handler(value)
        out = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in out.items() if value is not _NO_VALUE}

    def _Ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.values:
            return self.values[name]
        return f"Ref:{name}"

    def _Condition(self, name: str) -> bool:
        return self.condition(name)

    def _GetAtt(self, value: Any) -> str:
        parts = value if isinstance(value, list) else value.split(".", 1)
        return "GetAtt:" + ".".join(parts)

    def _If(self, value: list[Any]) -> Any:
        name, then, otherwise = value
        return self.resolve(then if self.condition(name) else otherwise)

    def _Equals(self, value: list[Any]) -> bool:
        left, right = (self.resolve(v) for v in value)
        # Parameters are compared as strings ("1" equals a Number parameter of 1).
        return _as_text(left) == _as_text(right)

    def _Not(self, value: list[Any]) -> bool:
        return not self.resolve(value[0])

    def _Or(self, value: list[Any]) -> bool:
        assert 2 <= len(value) <= 10, "Fn::Or takes 2 to 10 conditions"
        return any(self.resolve(v) for v in value)

    def _And(self, value: list[Any]) -> bool:
        assert 2 <= len(value) <= 10, "Fn::And takes 2 to 10 conditions"
        return all(self.resolve(v) for v in value)

    def _Split(self, value: list[Any]) -> list[str]:
        separator, text = value
        return _as_text(self.resolve(text)).split(separator)

    def _Select(self, value: list[Any]) -> Any:
        index, items = value
        return self.resolve(items)[int(self.resolve(index))]

    def _Join(self, value: list[Any]) -> str:
        separator, parts = value
        resolved = self.resolve(parts)
        return str(separator).join(
            _as_text(p) for p in (resolved if isinstance(resolved, list) else [resolved])
        )

    def _FindInMap(self, value: list[Any]) -> Any:
        name, top, second = (self.resolve(v) for v in value)
        return self.template["Mappings"][name][_as_text(top)][_as_text(second)]

    def _Sub(self, value: Any) -> str:
        text, names = (value, {}) if isinstance(value, str) else value
        known = {**self.values, **self.resolve(names)}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in known:
                item = known[name]
                return ",".join(item) if isinstance(item, list) else _as_text(item)
            if "." in name:
                return "GetAtt:" + name
            return f"Ref:{name}"

        return _SUB_NAME.sub(one, text).replace("${!", "${")


def _replace_identifier(node: Any, identifier: str, item: str) -> Any:
    def text(value: str) -> str:
        return value.replace("${" + identifier + "}", item).replace("&{" + identifier + "}", item)

    if isinstance(node, str):
        return text(node)
    if isinstance(node, list):
        return [_replace_identifier(v, identifier, item) for v in node]
    if isinstance(node, dict):
        if node == {"Ref": identifier}:
            return item
        return {text(k): _replace_identifier(v, identifier, item) for k, v in node.items()}
    return node


# --- docs/deploy.md's parameter table -------------------------------------------------------

TABLE_START: Final = (
    "<!-- parameters: generated from template.yaml by `python -m tests.template_render --write` -->"
)
TABLE_END: Final = "<!-- end of parameters -->"


def parameter_variables(template: dict[str, Any]) -> dict[str, list[str]]:
    """Each parameter -> the function's environment variables whose value it gives."""
    variables = template["Resources"]["CollectorFunction"]["Properties"]["Environment"]["Variables"]
    found: dict[str, list[str]] = {}

    def refs(node: Any, variable: str) -> None:
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in template["Parameters"]:
                found.setdefault(node["Ref"], []).append(variable)
            for value in node.values():
                refs(value, variable)
        elif isinstance(node, list):
            for value in node:
                refs(value, variable)

    for variable, value in variables.items():
        refs(value, variable)
    return found


def _summary(description: str, variables: list[str]) -> str:
    text = " ".join(description.split())
    for variable in variables:
        text = text.removeprefix(variable).lstrip(",. ")
    # A page named in a description is a link from docs/deploy.md (its neighbour).
    text = re.sub(r"\bdocs/([\w-]+\.md)", r"[docs/\1](\1)", text)
    return text.replace("|", "\\|")


def parameter_table(template: dict[str, Any] | None = None) -> str:
    template = template if template is not None else load_template()
    variables = parameter_variables(template)
    rows = [
        "| parameter | variable | default | what |",
        "|---|---|---|---|",
    ]
    for name, spec in template["Parameters"].items():
        names = variables.get(name, [])
        default = _as_text(spec.get("Default", ""))
        if name == "CollectorInstanceName":
            default = "(the stack's name)"
        shown_default = f"`{default}`" if default and not default.startswith("(") else default
        what = _summary(spec.get("Description", ""), names)
        if "AllowedValues" in spec and len(spec["AllowedValues"]) <= 8:
            what += " One of " + ", ".join(f"`{v}`" for v in spec["AllowedValues"]) + "."
        if "MinValue" in spec:
            what += f" {spec['MinValue']} to {spec['MaxValue']}."
        shown_vars = ", ".join(f"`{v}`" for v in names)
        rows.append(f"| `{name}` | {shown_vars} | {shown_default} | {what.strip()} |")
    return "\n".join(rows)


def write_table(page: Path = ROOT / "docs" / "deploy.md") -> None:
    """Put the generated table between the page's markers."""
    text = page.read_text()
    before, rest = text.split(TABLE_START, 1)
    _, after = rest.split(TABLE_END, 1)
    page.write_text(f"{before}{TABLE_START}\n{parameter_table()}\n{TABLE_END}{after}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_table()
    else:
        sys.stdout.write(parameter_table() + "\n")
