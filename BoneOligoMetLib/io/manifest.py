"""Cohort manifests: one CSV row per lesion pointing to its patient's CT, PET and lesion images.

:func:`read_manifest` checks every row (patient, lesion label, image paths, ROI names, liver
seed) and groups the lesions into cases that share one CT and one PET, so that extraction reads
each case's images once. The columns are documented for users in ``docs/cohort_manifest.md``;
relative paths are relative to the manifest's folder. The phantom's ``manifest.csv`` is one.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from BoneOligoMetLib.errors import ManifestError
from BoneOligoMetLib.io.images import read_image
from BoneOligoMetLib.io.suv import read_suv_image

log = logging.getLogger(__name__)

REQUIRED = ("patient_id", "lesion_label", "lesions")
CT_COLUMNS = ("ct", "ct_dicom")
PET_COLUMNS = ("suv", "pet_dicom")


@dataclass(frozen=True)
class LesionEntry:
    """One manifest row: a lesion of a case."""

    row: int  # 0-based row number in the manifest (the table keeps this order)
    lesion_label: int
    lesions: str  # absolute path of the lesion label image, RTSTRUCT or SEG
    truth: Optional[Any] = None  # the manifest's ``label`` column, if any
    clinical: tuple[tuple[str, Any], ...] = ()  # (clin_* column, value)
    roi: str = ""  # the lesion's ROI / segment name when ``lesions`` is an RTSTRUCT or SEG


@dataclass(frozen=True)
class CaseEntry:
    """The lesions of one patient (and reader) that share a CT and a PET."""

    patient_id: str
    reader: str  # "" when the manifest has no reader column
    ct: str  # absolute path
    ct_is_dicom: bool
    pet: str  # absolute path: an SUV image, or a PET DICOM folder
    pet_is_dicom: bool
    liver_seed_lps_mm: Optional[tuple[float, float, float]]
    lesions: tuple[LesionEntry, ...]

    @property
    def name(self) -> str:
        return self.patient_id + (f" (reader {self.reader})" if self.reader else "")

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every file or folder the case reads; then, for RTSTRUCT/SEG lesions, which ROI each
        label takes (``RS.dcm::label 1=GTV``), so that a changed ROI changes the fingerprint."""
        paths = [self.ct, self.pet, *sorted({lesion.lesions for lesion in self.lesions})]
        rois = sorted(f"{e.lesions}::label {e.lesion_label}={e.roi}" for e in self.lesions if e.roi)
        return tuple(dict.fromkeys(paths + rois))


@dataclass(frozen=True)
class Manifest:
    path: str
    cases: tuple[CaseEntry, ...]
    clinical_columns: tuple[str, ...]  # clin_* columns in manifest order
    has_truth: bool
    has_reader: bool

    @property
    def n_lesions(self) -> int:
        return sum(len(case.lesions) for case in self.cases)


def parse_value(text: str) -> Any:
    """A CSV cell as int, float, None (empty) or the text itself."""
    text = text.strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else None


def _seed(text: str, where: str) -> Optional[tuple[float, float, float]]:
    text = text.strip()
    if not text:
        return None
    parts = text.replace(";", ",").replace(" ", ",").split(",")
    try:
        values = tuple(float(p) for p in parts if p)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ManifestError(f"{where}: liver_seed_lps_mm must be 'x,y,z' (mm), got {text!r}")
    return values  # type: ignore[return-value]


def _seed_from_record(lesions: Path) -> Optional[tuple[float, float, float]]:
    """The phantom's ``patient.json`` beside the lesion image holds the liver seed."""
    record = lesions.parent / "patient.json"
    if not record.is_file():
        return None
    try:
        seed = json.loads(record.read_text()).get("liver_seed_lps_mm")
    except (OSError, ValueError):
        return None
    return tuple(float(v) for v in seed) if seed and len(seed) == 3 else None  # type: ignore[return-value]


def _choose(row: dict[str, str], columns: Sequence[str], prefer_dicom: bool) -> tuple[str, bool]:
    """(path, is_dicom) from the first non-empty of ``columns`` (DICOM first if preferred)."""
    order = list(columns)[::-1] if prefer_dicom else list(columns)
    for column in order:
        value = (row.get(column) or "").strip()
        if value:
            return value, column.endswith("_dicom")
    return "", False


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of the CSV file; an unreadable file is a ManifestError."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)
    except OSError as error:
        raise ManifestError(f"{path}: cannot read ({error.strerror or error})") from None


def _check_columns(path: Path, columns: Sequence[str], rows: Sequence[dict[str, str]]) -> None:
    """The required columns are there (a CT and a PET column among them), and some rows."""
    missing = [c for c in REQUIRED if c not in columns]
    if not any(c in columns for c in CT_COLUMNS):
        missing.append(" or ".join(CT_COLUMNS))
    if not any(c in columns for c in PET_COLUMNS):
        missing.append(" or ".join(PET_COLUMNS))
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
    if not rows:
        raise ManifestError(f"{path}: no rows")


def _resolve(base: Path, text: str) -> str:
    """An absolute path: ``text`` itself, or relative to the manifest's folder ``base``."""
    candidate = Path(text).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _lesion_key(row: dict[str, str], where: str) -> tuple[str, str, int]:
    """(patient, reader, lesion label) of a row: a patient and a label > 0 are required."""
    patient = (row.get("patient_id") or "").strip()
    if not patient:
        raise ManifestError(f"{where}: empty patient_id")
    try:
        label = int(str(row.get("lesion_label", "")).strip())
    except ValueError:
        raise ManifestError(
            f"{where}: lesion_label {row.get('lesion_label')!r} is not an integer"
        ) from None
    if label <= 0:
        raise ManifestError(f"{where}: lesion_label must be > 0, got {label}")
    return patient, (row.get("reader") or "").strip(), label


def _image_paths(row: dict[str, str], where: str, prefer_dicom: bool):
    """(ct, ct is DICOM, pet, pet is DICOM, lesions) as the row gives them; none may be empty."""
    ct, ct_dicom = _choose(row, CT_COLUMNS, prefer_dicom)
    pet, pet_dicom = _choose(row, PET_COLUMNS, prefer_dicom)
    lesions = (row.get("lesions") or "").strip()
    for value, name in ((ct, "CT"), (pet, "PET"), (lesions, "lesions")):
        if not value:
            raise ManifestError(f"{where}: no {name} path")
    return ct, ct_dicom, pet, pet_dicom, lesions


class _SeenRows:
    """What earlier rows named: each lesion once per reader; per lesion file, a ROI name on
    every row or on none, each name once (ignoring case)."""

    def __init__(self) -> None:
        self.lesions: set[tuple[str, str, int]] = set()
        self.named: dict[tuple[str, str, str], bool] = {}  # lesion file -> rows name ROIs
        self.rois: dict[tuple[str, str, str], set[str]] = {}

    def add_lesion(self, key: tuple[str, str, int], where: str) -> None:
        patient, _, label = key
        if key in self.lesions:
            raise ManifestError(f"{where}: lesion {label} of {patient} is listed twice")
        self.lesions.add(key)

    def add_roi(self, file_key: tuple[str, str, str], roi: str, lesions: str, where: str) -> None:
        patient = file_key[0]
        if self.named.setdefault(file_key, bool(roi)) != bool(roi):
            raise ManifestError(
                f"{where}: {lesions} is given with a lesion_roi on some rows of {patient} and "
                "without on others (an RTSTRUCT/SEG needs a ROI name on every row)"
            )
        named = self.rois.setdefault(file_key, set())
        if roi and roi.casefold() in named:
            raise ManifestError(f"{where}: ROI {roi!r} of {lesions} is listed twice for {patient}")
        named.add(roi.casefold())


def _group_cases(path: Path, items: dict[tuple[str, str, str, str], list]) -> list[CaseEntry]:
    """One case per (patient, reader, CT, PET), its rows agreeing on the liver seed."""
    result = []
    for (patient, reader_name, ct, pet), rows in items.items():
        seeds = {seed for _, _, _, seed in rows if seed is not None}
        if len(seeds) > 1:
            raise ManifestError(f"{path}: {patient} has different liver seeds on its rows")
        result.append(
            CaseEntry(
                patient_id=patient,
                reader=reader_name,
                ct=ct,
                ct_is_dicom=rows[0][1],
                pet=pet,
                pet_is_dicom=rows[0][2],
                liver_seed_lps_mm=next(iter(seeds)) if seeds else None,
                lesions=tuple(entry for entry, _, _, _ in rows),
            )
        )
    return result


def read_manifest(path: Union[str, Path], prefer_dicom: bool = False) -> Manifest:
    """Read and check a cohort manifest (its columns: ``docs/cohort_manifest.md``).

    ``prefer_dicom``: read ``ct_dicom``/``pet_dicom`` where both they and ``ct``/``suv`` are
    given. Structural problems are a :class:`ManifestError` naming the row; missing image files
    are not checked here (they fail their own case at extraction, and the run goes on).
    """
    path = Path(path)
    columns, rows = _read_rows(path)
    _check_columns(path, columns, rows)
    clinical_columns = tuple(c for c in columns if c.startswith("clin_"))
    base = path.resolve().parent
    seen = _SeenRows()
    cases: dict[tuple[str, str, str, str], list] = {}
    for number, row in enumerate(rows):
        where = f"{path} row {number + 2}"  # the header is line 1
        key = _lesion_key(row, where)
        seen.add_lesion(key, where)
        patient, reader_name, label = key
        ct, ct_dicom, pet, pet_dicom, lesions = _image_paths(row, where, prefer_dicom)
        lesions_path = _resolve(base, lesions)
        roi = (row.get("lesion_roi") or "").strip()
        seen.add_roi((patient, reader_name, lesions_path), roi, lesions, where)
        seed = _seed(row.get("liver_seed_lps_mm") or "", where)
        if seed is None:
            seed = _seed_from_record(Path(lesions_path))
        entry = LesionEntry(
            row=number,
            lesion_label=label,
            lesions=lesions_path,
            truth=parse_value(row["label"]) if "label" in columns else None,
            clinical=tuple((c, parse_value(row.get(c) or "")) for c in clinical_columns),
            roi=roi,
        )
        case_key = (patient, reader_name, _resolve(base, ct), _resolve(base, pet))
        cases.setdefault(case_key, []).append((entry, ct_dicom, pet_dicom, seed))
    result = _group_cases(path, cases)
    no_seed = [case.name for case in result if case.liver_seed_lps_mm is None]
    if no_seed:
        log.warning(
            "%d case(s) without a liver seed (e.g. %s): their liver-ratio columns stay empty",
            len(no_seed),
            no_seed[0],
        )
    return Manifest(
        path=str(path),
        cases=tuple(result),
        clinical_columns=clinical_columns,
        has_truth="label" in columns,
        has_reader="reader" in columns,
    )


def read_case_images(case: CaseEntry):
    """A case's CT (HU) and PET as SUV: image files, or DICOM folders (PET converted to SUVbw)."""
    ct = read_image(case.ct, modality="CT" if case.ct_is_dicom else None)
    return ct, read_suv_image(case.pet)
