"""Bundled development standards per Seattle zone, for tools that need numbers rather than prose.

The table lives in ``selador/knowledge/data/zoning_standards.json`` and is read once per container.
Values are general summaries of the Seattle Municipal Code sections named in each entry's ``source``;
the ``notes`` carry the conditions a single number cannot (urban-center variants, MHA suffixes,
small-lot rules). The knowledge-base documents explain the same standards in prose.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_DATA_PACKAGE = "selador.knowledge.data"
_DATA_FILE = "zoning_standards.json"

# Map designations (SMC 23.30.010) decorate the base zone: a Mandatory Housing Affordability
# suffix "(M)", "(M1)", "(M2)" and a pedestrian "P" after the zone number. Neither changes height,
# FAR or setbacks, so they are dropped before the lookup.
_MHA_SUFFIX = re.compile(r"\(\s*M\d?\s*\)")
_ZONE = re.compile(r"^(?P<base>[A-Z]+?)\s*-?\s*(?P<num>\d)?(?P<ped>P)?(?:\s*-?\s*(?P<height>\d{2,3}))?$")
# The pre-2021 single-family names still appear on old permits and in people's questions.
_FORMER_NAMES = {"SF5000": "NR3", "SF7200": "NR2", "SF9600": "NR1"}


class ZoningDataError(RuntimeError):
    """The bundled zoning table is missing or malformed (a packaging bug, not a user error)."""


@dataclass(frozen=True)
class ZoneStandard:
    """General development standards of one zone.

    Attributes:
        code: Canonical zone code, e.g. ``"LR2"`` or ``"NC3-75"``.
        name: Human-readable zone name.
        max_height_ft: Base height limit in feet; ``None`` where the code sets no single number (HR).
        far: Base floor area ratio limit; ``None`` where none applies or it depends on the project.
        max_lot_coverage: Maximum lot coverage as a fraction of lot area; ``None`` where none applies.
        front_setback_ft: General front setback in feet (0 where none is required).
        side_setback_ft: General side setback in feet.
        rear_setback_ft: General rear setback in feet.
        min_lot_size_sqft: Minimum area of a new lot in square feet; ``None`` where none applies.
        notes: Conditions and variants that the numbers above leave out.
        source: The SMC sections the values summarize.
    """

    code: str
    name: str
    max_height_ft: float | None
    far: float | None
    max_lot_coverage: float | None
    front_setback_ft: float
    side_setback_ft: float
    rear_setback_ft: float
    min_lot_size_sqft: int | None
    notes: str
    source: str


def _optional_float(entry: dict[str, Any], key: str) -> float | None:
    value = entry[key]
    return None if value is None else float(value)


def _parse_entry(code: str, entry: dict[str, Any]) -> ZoneStandard:
    try:
        min_lot = entry["min_lot_size_sqft"]
        return ZoneStandard(
            code=code,
            name=str(entry["name"]),
            max_height_ft=_optional_float(entry, "max_height_ft"),
            far=_optional_float(entry, "far"),
            max_lot_coverage=_optional_float(entry, "max_lot_coverage"),
            front_setback_ft=float(entry["front_setback_ft"]),
            side_setback_ft=float(entry["side_setback_ft"]),
            rear_setback_ft=float(entry["rear_setback_ft"]),
            min_lot_size_sqft=None if min_lot is None else int(min_lot),
            notes=str(entry["notes"]),
            source=str(entry["source"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ZoningDataError(f"zoning table entry {code!r} is malformed: {exc!r}") from exc


@functools.cache
def _standards() -> dict[str, ZoneStandard]:
    try:
        raw = resources.files(_DATA_PACKAGE).joinpath(_DATA_FILE).read_text(encoding="utf-8")
        data = json.loads(raw)
    except (OSError, ModuleNotFoundError, json.JSONDecodeError) as exc:
        raise ZoningDataError(f"cannot read the bundled zoning table: {exc!r}") from exc
    if not isinstance(data, dict):
        raise ZoningDataError("the bundled zoning table must be a JSON object keyed by zone code")
    return {code: _parse_entry(code, entry) for code, entry in data.items()}


def load_zoning_standards() -> dict[str, ZoneStandard]:
    """Return the bundled zoning table; the file is read and parsed once per process.

    Returns:
        A mapping from canonical zone code (``"NR3"``, ``"LR2"``, ``"NC2-55"``...) to its standards.
        Each call gets its own dict (the entries are frozen and shared), so a caller that edits
        the mapping cannot corrupt the cached table for the rest of the container.

    Raises:
        ZoningDataError: when the bundled file is missing or malformed.
    """
    return dict(_standards())


def normalize_zone_code(code: str) -> str | None:
    """Reduce a zone designation as people write it to the table's canonical code.

    ``"lr-2"``, ``"LR 2"`` and ``"LR2 (M1)"`` become ``"LR2"``; ``"nc3p-75 (M)"`` and ``"NC3 75"``
    become ``"NC3-75"``; the former names ``"SF 5000"``/``"SF 7200"``/``"SF 9600"`` become
    ``"NR3"``/``"NR2"``/``"NR1"``.

    Args:
        code: A zone designation in any case and spacing.

    Returns:
        The canonical code, or ``None`` when the text does not look like a zone designation.
    """
    text = _MHA_SUFFIX.sub("", code.upper()).strip()
    compact = re.sub(r"[\s\-]+", "", text)
    if compact in _FORMER_NAMES:
        return _FORMER_NAMES[compact]
    match = _ZONE.match(re.sub(r"\s+", " ", text))
    if match is None:
        return None
    canonical = match["base"] + (match["num"] or "")
    if match["height"]:
        canonical += f"-{match['height']}"
    return canonical


def lookup_zone(code: str) -> ZoneStandard | None:
    """Find the standards of a zone, tolerating case, spaces, hyphens and map suffixes.

    Args:
        code: A zone designation such as ``"LR2"``, ``"lr 2"``, ``"NC2P-55 (M)"`` or ``"SF 5000"``.

    Returns:
        The zone's standards, or ``None`` when the zone is not in the bundled table.
    """
    canonical = normalize_zone_code(code)
    if canonical is None:
        return None
    return _standards().get(canonical)
