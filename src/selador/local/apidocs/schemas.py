"""JSON Schemas of what goes over the wire, generated from pydantic models for the API documents.

Two directions, two rules:

* **Inbound** (what clients send: :class:`~selador.protocol.QueryRequest`,
  :class:`~selador.protocol.RunCommand`): pydantic's validation schema, as the server validates
  with exactly these models; a ``null`` is accepted wherever the model takes ``None``.
* **Outbound** (frames and HTTP answers): every frame is serialised with ``exclude_none``, so a
  field whose default is ``None`` is either absent or set, never ``null``, and every other field is
  always there (required). A field declared ``X | None`` without a default is sent as ``null``.
  ``extra="forbid"`` (which guards the server's own construction of frames) is not published:
  the protocol adds fields over time and clients must accept them.

Descriptions come from the models' docstrings: the class docstring (without its ``Attributes:``
section) describes the schema, and each field gets the string written under it or its entry in
``Attributes:``. reStructuredText ``literals`` become Markdown `code`, as both documents take
CommonMark.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

REF_TEMPLATE = "#/components/schemas/{model}"
"""Where both documents keep their schemas (AsyncAPI 3.0 and OpenAPI 3.1 alike)."""

_ROLE = re.compile(r":\w+:`~?([^`]+)`")


class _WireSchema(GenerateJsonSchema):
    """Shared by both directions: no generated titles on fields (the property name says it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        """Never: ``"title": "Request Id"`` under ``request_id`` only adds noise."""
        return False


class InboundSchema(_WireSchema):
    """What clients send: pydantic's validation schema, without ``"default": null``."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        """The field's schema; a ``None`` default is left out (leaving the field out means the same)."""
        json_schema = super().default_schema(schema)
        if "default" in json_schema and json_schema["default"] is None:
            del json_schema["default"]
        return json_schema


def _absent_when_none(schema: Any) -> bool:
    """A field that ``exclude_none`` drops: it defaults to ``None`` and may hold it."""
    return (
        schema.get("type") == "default"
        and "default" in schema
        and schema["default"] is None
        and schema["schema"].get("type") == "nullable"
    )


class OutboundSchema(_WireSchema):
    """What the server sends (see the module docstring for the rules)."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        """The field's schema without ``null`` when it is absent instead, and without a default.

        A default says what a missing field means; outbound, a field with a default other than
        ``None`` is never missing.
        """
        inner = schema["schema"]
        if _absent_when_none(schema):
            inner = inner["schema"]
        return self.generate_inner(inner)

    def field_is_required(self, field: Any, total: bool) -> bool:
        """Required unless ``exclude_none`` can drop it."""
        return not _absent_when_none(field["schema"])

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        """The model's schema, open to fields a later protocol version adds."""
        json_schema = super().model_schema(schema)
        if json_schema.get("additionalProperties") is False:
            del json_schema["additionalProperties"]
        return json_schema


def component_schemas(
    inbound: Sequence[type[BaseModel]] = (), outbound: Sequence[type[BaseModel]] = ()
) -> dict[str, dict[str, Any]]:
    """The schemas of ``inbound`` and ``outbound`` models and every model they contain, described.

    Args:
        inbound: Models of what clients send.
        outbound: Models of what the server sends.

    Returns:
        ``components.schemas``: each model's name and schema, sorted by name, ``$ref``s pointing
        at ``#/components/schemas/…``.

    Raises:
        ValueError: when a model nested in both directions would need two different schemas.
    """
    schemas: dict[str, dict[str, Any]] = {}
    for models, mode, generator in (
        (inbound, "validation", InboundSchema),
        (outbound, "serialization", OutboundSchema),
    ):
        if not models:
            continue
        _, top = models_json_schema(
            [(model, mode) for model in models],  # type: ignore[misc]
            ref_template=REF_TEMPLATE,
            schema_generator=generator,
        )
        for name, schema in top.get("$defs", {}).items():
            if schemas.get(name, schema) != schema:
                raise ValueError(f"{name} has one schema inbound and another outbound; split the model")
            schemas[name] = schema
    classes = {cls.__name__: cls for cls in _models_within([*inbound, *outbound])}
    for name, schema in schemas.items():
        describe(schema, classes[name])
    return dict(sorted(schemas.items()))


def describe(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Set a schema's description and its properties' from the model's docstrings (in place).

    Args:
        schema: The model's JSON Schema.
        cls: The model.
    """
    summary, _ = _split_attributes(inspect.getdoc(cls) or "")
    if summary:
        schema["description"] = markdown(summary)
    else:
        schema.pop("description", None)
    docs = field_docs(cls)
    for name, prop in schema.get("properties", {}).items():
        if name in docs:
            prop["description"] = markdown(docs[name])


def field_docs(cls: type[BaseModel]) -> dict[str, str]:
    """Each field's documentation: the string under it, or its entry in ``Attributes:``.

    Base classes first, so a subclass's text wins.

    Args:
        cls: The model.

    Returns:
        Field name to text.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        docs.update(_split_attributes(inspect.getdoc(klass) or "")[1])
        docs.update(_attribute_docstrings(klass))
    return docs


def markdown(text: str) -> str:
    """Docstring text as CommonMark: ``literal`` → `literal`, roles dropped, paragraphs unwrapped.

    Args:
        text: A cleaned docstring or a part of one.

    Returns:
        The text, each paragraph on one line.
    """
    text = _ROLE.sub(r"`\1`", text).replace("``", "`")
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


def _attribute_docstrings(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}  # a class made at run time has no source, hence no attribute docstrings
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    docs = {}
    for node, following in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _split_attributes(doc: str) -> tuple[str, dict[str, str]]:
    """A Google-style docstring's text before ``Attributes:``, and that section's entries."""
    lines = doc.splitlines()
    if "Attributes:" not in lines:
        return doc.strip(), {}
    start = lines.index("Attributes:")
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    end = len(lines)
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if line and not line.startswith(" "):
            end = index  # the next section
            break
        match = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)$", line)
        if match:
            current = entries.setdefault(match.group(1), [match.group(2)])
        elif current is not None and line.strip():
            current.append(line.strip())
    summary = "\n".join([*lines[:start], *lines[end:]]).strip()
    return summary, {name: " ".join(words) for name, words in entries.items()}


def _models_within(models: Iterable[type[BaseModel]]) -> list[type[BaseModel]]:
    """The models and every model their fields hold, however nested (``list[Source]``…)."""
    found: list[type[BaseModel]] = []
    pending = list(models)
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            pending.extend(_models_in(field.annotation))
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]
