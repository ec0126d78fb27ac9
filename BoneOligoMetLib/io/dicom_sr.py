"""DICOM Structured Report of the lesion measurements: a TID 1500 Imaging Measurement Report
(Comprehensive 3D SR) written with highdicom, as Slicer's QuantitativeReporting and dcmqi write.

One volumetric measurement group (TID 1411) per lesion points at the lesion's segment in the SEG
and holds its volume, SUVbw max/mean/peak, MTV, TLG and probability of cancer, each with its
code and UCUM unit (the constants below); the metabolic values and the probability carry an
algorithm identification (TID 4019) saying how they were measured and by which model. A value
that was not measured (no PET, a lesion the model did not classify) is left out, never written
as a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from BoneOligoMetLib.io.dicom_seg import (
    BONE,
    LESION_TYPE,
    MANUFACTURER,
    MODEL_NAME,
    SegmentRecord,
    code,
    require_highdicom,
    software_version,
)

SR_SERIES_NUMBER = 902
# (value, scheme, meaning)
VOLUME = ("118565006", "SCT", "Volume")
SUVBW = ("126401", "DCM", "SUVbw")
MAXIMUM = ("56851009", "SCT", "Maximum")
MEAN = ("373098007", "SCT", "Mean")
PEAK = ("126031", "DCM", "Peak Value Within ROI")
METABOLIC_VOLUME = ("126032", "DCM", "Metabolic Volume")
TLG = ("126033", "DCM", "Total Lesion Glycolysis")
PROBABILITY_OF_CANCER = ("111047", "DCM", "Probability of cancer")
PROCEDURE = ("443271005", "SCT", "PET/CT FDG imaging of whole body")
ML = ("ml", "UCUM", "milliliter")
SUV_UNIT = ("g/ml{SUVbw}", "UCUM", "Standardized Uptake Value body weight")
TLG_UNIT = ("g{SUVbw}", "UCUM", "gram (SUVbw × milliliter)")
PERCENT = ("%", "UCUM", "percent")


@dataclass(frozen=True)
class LesionMeasurements:
    """What the report says of one lesion; None where it was not measured."""

    label: int
    volume_ml: float
    suv_max: Optional[float] = None
    suv_mean: Optional[float] = None
    suv_peak: Optional[float] = None
    mtv_ml: Optional[float] = None
    tlg: Optional[float] = None  # SUV·mL
    probability: Optional[float] = None  # of malignancy, 0–1


@dataclass(frozen=True)
class ModelInfo:
    """The model behind the probabilities."""

    name: str
    warning: str = ""  # e.g. the synthetic demo model's "not for clinical use"


def _metabolic_algorithm(hd: Any, method: Sequence[str]) -> Any:
    """How the SUV values were measured (TID 4019), its text parameters from ``method``."""
    return hd.sr.AlgorithmIdentification(
        name="BoneOligoMet metabolic parameters",
        version=software_version(),
        parameters=list(method) or None,
    )


def _model_algorithm(hd: Any, model: Optional[ModelInfo]) -> Any:
    """The model behind the probabilities (TID 4019), its warning as a parameter; None without."""
    if model is None:
        return None
    return hd.sr.AlgorithmIdentification(
        name=model.name or "unnamed model",
        version=software_version(),
        parameters=[model.warning] if model.warning else None,
    )


def _measurement(hd: Any, name, value, unit, derivation=None, algorithm=None) -> Any:
    """One numeric measurement: concept ``name``, ``value`` in ``unit`` (code triples)."""
    return hd.sr.Measurement(
        name=code(name),
        value=float(value),
        unit=code(unit),
        derivation=code(derivation) if derivation else None,
        algorithm_id=algorithm,
    )


def _lesion_measurements(
    hd: Any, lesion: LesionMeasurements, metabolic: Any, model: Optional[Any]
) -> list[Any]:
    """The measurements of one lesion, leaving out what was not measured; the probability only
    with a model (``metabolic``, ``model``: their algorithm identifications)."""
    measurements = [_measurement(hd, VOLUME, lesion.volume_ml, ML)]
    for value, derivation in (
        (lesion.suv_max, MAXIMUM),
        (lesion.suv_mean, MEAN),
        (lesion.suv_peak, PEAK),
    ):
        if value is not None:
            measurements.append(_measurement(hd, SUVBW, value, SUV_UNIT, derivation, metabolic))
    if lesion.mtv_ml is not None:
        measurements.append(_measurement(hd, METABOLIC_VOLUME, lesion.mtv_ml, ML, None, metabolic))
    if lesion.tlg is not None:
        measurements.append(_measurement(hd, TLG, lesion.tlg, TLG_UNIT, None, metabolic))
    if lesion.probability is not None and model is not None:
        probability = 100.0 * lesion.probability
        measurements.append(
            _measurement(hd, PROBABILITY_OF_CANCER, probability, PERCENT, None, model)
        )
    return measurements


def _lesion_group(
    hd: Any, seg: Any, source_series: str, segment: SegmentRecord, measurements: list[Any]
) -> Any:
    """The TID 1411 group of one lesion: a bone lesion finding pointing at its SEG segment
    (``source_series``: the UID of the series the SEG segments)."""
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=segment.tracking_uid, identifier=segment.tracking_id
        ),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=segment.number,
            source_series=hd.sr.SourceSeriesForSegmentation(source_series),
        ),
        finding_type=code(LESION_TYPE),
        finding_sites=[hd.sr.FindingSite(code(BONE))],
        measurements=measurements,
    )


def _device_observer(hd: Any, uid: Any) -> Any:
    """The observer context: this software as the observing device."""
    return hd.sr.ObserverContext(
        observer_type=code(("121007", "DCM", "Device")),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=uid("device"),
            name=MANUFACTURER,
            model_name=f"{MODEL_NAME} {software_version()}",
        ),
    )


def build_sr(
    seg: Any,
    segments: Sequence[SegmentRecord],
    lesions: Sequence[LesionMeasurements],
    *,
    model: Optional[ModelInfo] = None,
    metabolic_method: Sequence[str] = (),
    evidence: Sequence[Any] = (),
    series_number: int = SR_SERIES_NUMBER,
    uid: Optional[Any] = None,
    series_description: str = "BoneOligoMet lesion measurements",
) -> Any:
    """The measurement report (a highdicom ``Comprehensive3DSR``) of ``lesions``, each pointing
    at its segment of ``seg`` (matched by lesion label). ``metabolic_method``: text parameters
    describing the SUV measurements; ``evidence``: further datasets the values come from (the
    CT and PET headers)."""
    hd = require_highdicom()
    from BoneOligoMetLib.io.dicom_writer import UidSource

    uid = uid or UidSource()
    by_label = {segment.label: segment for segment in segments}
    source_series = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    metabolic = _metabolic_algorithm(hd, metabolic_method)
    model_algorithm = _model_algorithm(hd, model)
    groups = [
        _lesion_group(
            hd,
            seg,
            source_series,
            by_label[lesion.label],
            _lesion_measurements(hd, lesion, metabolic, model_algorithm),
        )
        for lesion in lesions
    ]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=_device_observer(hd, uid)
        ),
        procedure_reported=code(PROCEDURE),
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *evidence],
        content=report,
        series_instance_uid=uid("series", "SR"),
        series_number=series_number,
        sop_instance_uid=uid("instance", "SR"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=series_description,
    )
    sr.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: model names and warnings are free text
    return sr
