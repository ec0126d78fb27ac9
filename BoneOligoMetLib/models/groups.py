"""The study's model variants (§2.6, Tables 2–4) as column selections: a group is the feature
columns whose names start with its prefixes. Also the names that reports give groups,
classifiers and the SUVmax baseline, and the error of an unusable table or model request.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from BoneOligoMetLib.errors import ModelingError
from BoneOligoMetLib.models.classifiers import display_name

BASELINE = "suvmax_liver"
BASELINE_NAME = "SUVmax > liver"
BASELINE_CLASSIFIER = "rule"


@dataclass(frozen=True)
class FeatureGroup:
    """A model variant: the columns whose names start with one of ``prefixes``.

    ``table`` and ``study_row`` locate the study's reported row (reported_results.csv:
    ``table``, ``modality_or_backbone``). ``clin_`` is optional: a table without clinical
    columns still has the Complex groups (radiomics/deep + metabolic), with a note.
    """

    key: str
    name: str
    prefixes: tuple[str, ...]
    table: int
    study_row: str

    @property
    def deep(self) -> bool:
        return any(p.startswith("dl_") for p in self.prefixes)

    @property
    def stage(self) -> str:
        """The selection stage: "dlr" (§3.6) when deep features are in, else "radiomics"."""
        return "dlr" if self.deep else "radiomics"


_RAD = ("ct_", "pet_", "petct_")
_DL = ("dl_ct_", "dl_pet_")
_CLINICAL = ("met_", "clin_")
GROUPS: dict[str, FeatureGroup] = {
    g.key: g
    for g in (
        FeatureGroup("ct", "Radiomics CT", ("ct_",), 2, "CT"),
        FeatureGroup("pet", "Radiomics PET", ("pet_",), 2, "PET"),
        FeatureGroup("petct", "Radiomics PET-CT", ("petct_",), 2, "PET/CT"),
        FeatureGroup("complex", "Complex", _RAD + _CLINICAL, 2, "Complex"),
        FeatureGroup("dl_ct", "DL CT", ("dl_ct_",), 3, "CT"),
        FeatureGroup("dl_pet", "DL PET", ("dl_pet_",), 3, "PET"),
        FeatureGroup("dl_petct", "DL PET-CT", _DL, 3, "PET/CT"),
        FeatureGroup("dl_complex", "DL Complex", _DL + _CLINICAL, 3, "Complex"),
        FeatureGroup("dlr", "DLR", _RAD + _DL, 4, "DLR"),
        FeatureGroup("dlr_complex", "DLR+Complex", _RAD + _DL + _CLINICAL, 4, "DLR+Complex"),
    )
}
# DeLong comparisons are against the most complete model the table allows, in this order.
REFERENCE_ORDER = ("dlr_complex", "complex")


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-_/]+", "", name.strip().lower())


def group_key(name: str) -> str:
    """The group key for a key or display name ("DLR+Complex", "radiomics pet-ct", "dl_ct")."""
    wanted = _normalise(name)
    for key, group in GROUPS.items():
        aliases = {_normalise(key), _normalise(group.name)}
        if group.name.startswith("Radiomics "):
            aliases.add(_normalise(group.name.replace("Radiomics ", "radiomics_")))
        if wanted in aliases:
            return key
    known = [*GROUPS, *(g.name for g in GROUPS.values())]
    close = difflib.get_close_matches(name.strip(), known, n=1, cutoff=0.5)
    close = close or difflib.get_close_matches(name.strip().lower(), list(GROUPS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ModelingError(f"unknown model {name!r}{hint} (known: {', '.join(GROUPS)})")


def group_name(key: str) -> str:
    """Display name of a group key, or of the baseline."""
    return BASELINE_NAME if key == BASELINE else GROUPS[key].name


def classifier_name(key: str) -> str:
    """Display name of a classifier registry key, or "reader rule" for the baseline."""
    return "reader rule" if key == BASELINE_CLASSIFIER else display_name(key)
