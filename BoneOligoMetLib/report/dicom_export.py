"""Export one patient's lesions for PACS: a DICOM SEG on the CT series and a TID 1500 measurement
report (SR) beside it; the one entry point of ``bone-oligomet export-dicom`` and of the Slicer
panel's "Export DICOM". Lesions on another grid are resampled nearest-neighbour onto the CT
slices (with a note); SUVmax/mean/peak, MTV and TLG are measured on the SUV image when one is
given, else taken from the classifier's results, which also give each lesion's probability and
the model's name and warning. Everything is checked and built in memory, then both files are
written under temporary names and renamed, so bad input writes nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.errors import BoneOligoMetError, MaskError
from BoneOligoMetLib.io.dicom_seg import (
    SourceSeries,
    build_seg,
    read_source_series,
    require_highdicom,
)
from BoneOligoMetLib.io.dicom_sr import LesionMeasurements, ModelInfo, build_sr

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
Progress = Callable[[float, str], None]
SEG_NAME, SR_NAME = "seg.dcm", "sr.dcm"


class ResultsError(BoneOligoMetError):
    """Classifier results that cannot go with these lesions (unreadable, other labels)."""


@dataclass(frozen=True)
class ClassifierResults:
    """What a classification said, by lesion label."""

    model: str
    warning: str
    rows: dict[int, dict[str, Any]]


def results_from_json(path: PathLike) -> ClassifierResults:
    """The ``results.json`` of ``bone-oligomet classify`` (model, warning, one row per lesion)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        rows = {int(row["lesion_label"]): dict(row) for row in data["lesions"]}
        return ClassifierResults(str(data.get("model", "")), str(data.get("warning", "")), rows)
    except OSError as error:
        raise ResultsError(f"{path}: cannot read ({error.strerror or error})") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ResultsError(
            f"{path}: not the results.json of bone-oligomet classify ({type(error).__name__}: "
            f"{error})"
        ) from None


def results_from_case(result: Any) -> ClassifierResults:
    """A ``classify.CaseResult``: its rows, with the metabolic values of its feature rows."""
    rows = {}
    features = {int(row.get("lesion_label", 0)): row for row in getattr(result, "features", [])}
    for row in result.rows:
        label = int(row["lesion_label"])
        merged = {k: v for k, v in features.get(label, {}).items() if k.startswith("met_")}
        merged.update(row)
        rows[label] = merged
    return ClassifierResults(str(result.bundle_name), str(result.warning), rows)


@dataclass(frozen=True)
class DicomExport:
    """What :func:`export_dicom` wrote."""

    seg_path: Path
    sr_path: Path
    lesions: list[LesionMeasurements]
    seg_series_uid: str
    sr_series_uid: str
    resampled: bool  # the labels were not on the CT grid
    notes: list[str] = field(default_factory=list)


def _probability(row: Mapping[str, Any]) -> Optional[float]:
    value = row.get("probability")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # e.g. "outside model domain"
    value = float(value)
    return value if np.isfinite(value) and 0.0 <= value <= 1.0 else None


def _optional(row: Mapping[str, Any], key: str) -> Optional[float]:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        return None
    return float(value)


def _write_atomically(datasets: Sequence[tuple[Any, Path]]) -> None:
    """Write every dataset under a temporary name, then rename them all."""
    temporary = []
    try:
        for ds, path in datasets:
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(f".{path.name}.{os.getpid()}.part")
            temporary.append(part)
            ds.save_as(part, enforce_file_format=True)
        for (_, path), part in zip(datasets, temporary):
            os.replace(part, path)
    finally:
        for part in temporary:
            if part.exists():
                part.unlink()


def _as_results(
    results: Union[PathLike, ClassifierResults, Any, None],
) -> Optional[ClassifierResults]:
    """``results`` as :class:`ClassifierResults`: read from a results.json path, or taken from a
    ``CaseResult``."""
    if results is None or isinstance(results, ClassifierResults):
        return results
    is_path = isinstance(results, (str, os.PathLike))
    return results_from_json(results) if is_path else results_from_case(results)


def _labels_kept(lesions: sitk.Image, frames: np.ndarray, name: str) -> list[int]:
    """The labels on the CT slices; a lesion that covers no CT voxel centre is a MaskError."""
    from BoneOligoMetLib.image.labels import label_regions

    given = sorted(label_regions(lesions, name))
    labels = [int(v) for v in np.unique(frames) if v > 0]
    lost = sorted(set(given) - set(labels))
    if lost:
        raise MaskError(
            f"{name}: lesion(s) {', '.join(map(str, lost))} cover no CT voxel centre "
            "once resampled onto the CT slices"
        )
    return labels


def _result_rows(
    results: Optional[ClassifierResults], labels: Sequence[int], name: str
) -> dict[int, dict[str, Any]]:
    """The results' row of each label; results naming a lesion the labels lack are an error."""
    if results is None:
        return {}
    extra = sorted(set(results.rows) - set(labels))
    if extra:
        raise ResultsError(
            f"results name lesion(s) {', '.join(map(str, extra))} that {name} does "
            f"not hold (it holds {', '.join(map(str, labels))})"
        )
    return results.rows


def _metabolics_on_ct(
    suv: sitk.Image, lesions: sitk.Image, frames: np.ndarray, series: SourceSeries, resampled: bool
) -> dict[int, Any]:
    """SUVmax/mean/peak, MTV and TLG of each lesion as placed on the CT slices, by label."""
    from BoneOligoMetLib.lesions.metabolic import metabolic_table

    on_ct = lesions
    if resampled and series.grid is not None:
        on_ct = sitk.GetImageFromArray(frames.astype(np.uint16))
        on_ct.CopyInformation(series.grid)
    return {m.label: m for m in metabolic_table(suv, on_ct)}


def _measure_lesions(
    labels: Sequence[int],
    frames: np.ndarray,
    voxel_ml: float,
    metabolics: Mapping[int, Any],
    rows: Mapping[int, Mapping[str, Any]],
    has_results: bool,
) -> tuple[list[LesionMeasurements], list[str]]:
    """(what the report says of each lesion, notes on what it leaves out). Metabolic values
    are measured on the PET where one is given, else taken from the results' ``met_*``."""
    measured, notes = [], []
    for label in labels:
        row = rows.get(label, {})
        volume_ml = float(np.count_nonzero(frames == label)) * voxel_ml
        if label in metabolics:
            m = metabolics[label]
            values = dict(
                suv_max=m.suv_max,
                suv_mean=m.suv_mean,
                suv_peak=m.suv_peak,
                mtv_ml=m.mtv_ml,
                tlg=m.tlg,
            )
        else:
            values = {
                key: _optional(row, f"met_{key}")
                for key in ("suv_max", "suv_mean", "suv_peak", "mtv_ml", "tlg")
            }
        probability = _probability(row) if row else None
        if has_results and not row:
            notes.append(f"lesion {label}: not in the results; no probability written")
        elif row and probability is None:
            notes.append(f"lesion {label}: {row.get('verdict', 'not classified')}; no probability")
        measured.append(
            LesionMeasurements(label=label, volume_ml=volume_ml, probability=probability, **values)
        )
    missing = sorted(
        {key for m in measured for key in ("suv_mean", "suv_peak") if getattr(m, key) is None}
    )
    if missing:
        notes.append(
            f"{' and '.join(k.replace('suv_', 'SUV') for k in missing)} not written (no SUV PET)"
        )
    return measured, notes


def _metabolic_method() -> list[str]:
    """How the SUV values were measured, as the SR's algorithm parameters."""
    from BoneOligoMetLib.lesions.metabolic import MTV_THRESHOLD_SUV

    return [
        f"MTV: PET voxels with SUVbw >= {MTV_THRESHOLD_SUV:g}; TLG = SUVmean(MTV) x MTV",
        "SUVpeak: highest mean SUVbw in a 1 cm3 sphere centred on a lesion voxel",
        "statistics on the PET's own voxels covered >= 50 % by the lesion",
    ]


def _sr_description(model: Optional[ModelInfo]) -> str:
    """The SR's SeriesDescription (64 characters at most): the model's warning where it has one."""
    description = "BoneOligoMet lesion measurements"
    if model is not None and model.warning:
        description = f"BoneOligoMet: {model.warning}"
    return description[:64]


def export_dicom(
    ct: Union[PathLike, Sequence[PathLike]],
    lesions: sitk.Image,
    out_dir: PathLike,
    *,
    suv: Optional[sitk.Image] = None,
    results: Union[PathLike, ClassifierResults, Any, None] = None,
    series_uid: Optional[str] = None,
    algorithm_type: str = "MANUAL",
    evidence: Sequence[Any] = (),
    lesions_name: str = "lesion label image",
    progress: Optional[Progress] = None,
) -> DicomExport:
    """Write ``seg.dcm`` and ``sr.dcm`` into ``out_dir`` (see the module docstring).

    ``ct``: the CT series' folder (``series_uid`` picks one of several) or its files.
    ``results``: a ``CaseResult``, a :class:`ClassifierResults`, or a results.json path.
    ``algorithm_type``: ``MANUAL`` or ``SEMIAUTOMATIC`` (lesions grown by ``segment``).
    ``evidence``: datasets (e.g. the PET headers) the SR lists as sources of its values.
    """
    from BoneOligoMetLib.image.labels import label_image

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    require_highdicom()
    if algorithm_type.upper() not in ("MANUAL", "SEMIAUTOMATIC"):
        raise BoneOligoMetError(f"algorithm type {algorithm_type!r}: MANUAL or SEMIAUTOMATIC")
    results = _as_results(results)
    report(0.0, "reading the CT series")
    lesions = label_image(lesions, lesions_name)
    series = read_source_series(ct, series_uid)
    frames, resampled = labels_on_series(lesions, series, lesions_name)
    labels = _labels_kept(lesions, frames, lesions_name)
    notes = []
    if resampled:
        notes.append(f"{lesions_name} was not on the CT grid: resampled nearest-neighbour")
    rows = _result_rows(results, labels, lesions_name)

    report(0.2, "measuring")
    spacing = series.grid.GetSpacing() if series.grid is not None else lesions.GetSpacing()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    metabolics = {} if suv is None else _metabolics_on_ct(suv, lesions, frames, series, resampled)
    measured, lesion_notes = _measure_lesions(
        labels, frames, voxel_ml, metabolics, rows, results is not None
    )
    notes += lesion_notes

    report(0.5, "building the SEG")
    written = build_seg(series, frames, labels, algorithm_type=algorithm_type)
    model = ModelInfo(results.model, results.warning) if results is not None else None
    method = _metabolic_method() if any(m.suv_max is not None for m in measured) else ()
    report(0.8, "building the SR")
    sr = build_sr(
        written.dataset,
        written.segments,
        measured,
        model=model,
        metabolic_method=method,
        evidence=list(series.datasets) + list(evidence),
        series_description=_sr_description(model),
    )
    out = Path(out_dir)
    seg_path, sr_path = out / SEG_NAME, out / SR_NAME
    _write_atomically([(written.dataset, seg_path), (sr, sr_path)])
    report(1.0, "written")
    return DicomExport(
        seg_path=seg_path,
        sr_path=sr_path,
        lesions=measured,
        seg_series_uid=str(written.dataset.SeriesInstanceUID),
        sr_series_uid=str(sr.SeriesInstanceUID),
        resampled=resampled,
        notes=notes,
    )


def _slice_grid(ds: Any, thickness: float) -> sitk.Image:
    """A one-slice image with the geometry of one DICOM slice."""
    orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    spacing = [float(v) for v in ds.PixelSpacing]
    normal = np.cross(orientation[:3], orientation[3:])
    grid = sitk.Image(int(ds.Columns), int(ds.Rows), 1, sitk.sitkUInt8)
    grid.SetOrigin(tuple(float(v) for v in ds.ImagePositionPatient))
    grid.SetSpacing((spacing[1], spacing[0], thickness))
    grid.SetDirection(tuple(np.stack([orientation[:3], orientation[3:], normal], axis=1).ravel()))
    return grid


def labels_on_series(
    labels: sitk.Image, series: SourceSeries, name: str = "lesion label image"
) -> tuple[np.ndarray, bool]:
    """(label values per CT slice as a (slices, rows, columns) array in the series' order,
    whether the labels had to be resampled). Labels on the CT grid are taken as they are;
    labels on another grid are resampled nearest-neighbour onto each CT slice."""
    from BoneOligoMetLib.image.geometry import describe_grid, require_overlap, same_grid

    if series.grid is not None and same_grid(labels, series.grid):
        return sitk.GetArrayFromImage(labels), False
    if series.grid is not None:
        require_overlap(series.grid, labels, ("CT", name))
        log.warning(
            "%s (%s) is not on the CT grid: resampled nearest-neighbour onto the CT slices",
            name,
            describe_grid(labels),
        )
    else:
        log.warning("unevenly spaced CT slices: %s sampled nearest-neighbour on each", name)
    thickness = float(series.grid.GetSpacing()[2]) if series.grid is not None else 1.0
    planes = []
    for ds in series.datasets:
        plane = sitk.Resample(
            labels, _slice_grid(ds, thickness), sitk.Transform(), sitk.sitkNearestNeighbor, 0
        )
        planes.append(sitk.GetArrayFromImage(plane)[0])
    return np.stack(planes), True
