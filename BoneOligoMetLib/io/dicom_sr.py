"""DICOM Structured Report of the lesion measurements: a TID 1500 Imaging Measurement Report
(Comprehensive 3D SR) written with highdicom, as Slicer's QuantitativeReporting and dcmqi write.

One measurement group (TID 1411, volumetric ROI) per lesion, pointing at the lesion's segment in
the SEG through the segment's tracking identifier and number; finding "Lesion" (SCT 52988006)
at site "Bone structure" (SCT 272673000). Measurements, each with its unit in UCUM:

================  ===========================================  ======================
volume            SCT 118565006 "Volume"                        ml
SUVmax            DCM 126401 "SUVbw", derivation "Maximum"      g/ml{SUVbw}
SUVmean           DCM 126401 "SUVbw", derivation "Mean"         g/ml{SUVbw}
SUVpeak           DCM 126401 "SUVbw", derivation DCM 126031
                  "Peak Value Within ROI"                       g/ml{SUVbw}
MTV               DCM 126032 "Metabolic Volume"                 ml
TLG               DCM 126033 "Total Lesion Glycolysis"          g{SUVbw} (SUVmean × mL)
P(malignant)      DCM 111047 "Probability of cancer"            % (0–100)
================  ===========================================  ======================

The metabolic values carry an algorithm identification (TID 4019) whose parameters say how they
were measured (MTV threshold, SUVpeak sphere); the probability carries the model's name, the
software version and, for the packaged synthetic model, its warning as a parameter. A value
that was not measured (no PET given, a lesion the model did not classify) is left out, never
written as a number.
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
    metabolic_algorithm = hd.sr.AlgorithmIdentification(
        name="BoneOligoMet metabolic parameters",
        version=software_version(),
        parameters=list(metabolic_method) or None,
    )
    model_algorithm = None
    if model is not None:
        model_algorithm = hd.sr.AlgorithmIdentification(
            name=model.name or "unnamed model",
            version=software_version(),
            parameters=[model.warning] if model.warning else None,
        )

    def number(name, value, unit, derivation=None, algorithm=None):
        return hd.sr.Measurement(
            name=code(name),
            value=float(value),
            unit=code(unit),
            derivation=code(derivation) if derivation else None,
            algorithm_id=algorithm,
        )

    groups = []
    for lesion in lesions:
        segment = by_label[lesion.label]
        measurements = [number(VOLUME, lesion.volume_ml, ML)]
        for value, derivation in (
            (lesion.suv_max, MAXIMUM),
            (lesion.suv_mean, MEAN),
            (lesion.suv_peak, PEAK),
        ):
            if value is not None:
                measurements.append(number(SUVBW, value, SUV_UNIT, derivation, metabolic_algorithm))
        if lesion.mtv_ml is not None:
            measurements.append(
                number(METABOLIC_VOLUME, lesion.mtv_ml, ML, None, metabolic_algorithm)
            )
        if lesion.tlg is not None:
            measurements.append(number(TLG, lesion.tlg, TLG_UNIT, None, metabolic_algorithm))
        if lesion.probability is not None and model_algorithm is not None:
            measurements.append(
                number(
                    PROBABILITY_OF_CANCER,
                    100.0 * lesion.probability,
                    PERCENT,
                    None,
                    model_algorithm,
                )
            )
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
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
        )
    observer = hd.sr.ObserverContext(
        observer_type=code(("121007", "DCM", "Device")),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=uid("device"),
            name=MANUFACTURER,
            model_name=f"{MODEL_NAME} {software_version()}",
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
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
