"""Whole-body candidate bone lesions on FDG PET/CT, ranked, for a reader to accept or delete.

    found = find_candidates(ct, suv)          # CT in HU, PET in SUV, any grids that overlap
    for c in found.candidates:                # proposed, best first
        c.rank, c.point_lps_mm, c.suv_max, c.score, c.site, c.why
    labels = candidate_rois(ct, suv, found)   # their grown ROIs on the CT grid (label = rank)

The step before the click, on the CPU and with nothing downloaded:

1. a coarse copy of the study on the PET grid: bone from the CT, the patient's marrow around
   every voxel (SUV and HU), the spill of hot organs (``candidate_maps``);
2. FDG foci at or in bone (the study's SUV 2.2 above the marrow around them, or clearly above
   that marrow), and, beside a hot organ, foci of what its spill leaves;
3. sclerotic CT departures from the marrow around them with no FDG focus: the non-avid
   metastasis;
4. for every focus, features that tell a bone lesion from physiology against bone — bladder
   beside the pubis, renal pelvis and ureter beside the spine and sacrum, heart beside sternum
   and ribs, brain inside the skull, bowel in the iliac fossa, inflamed or degenerative joints
   (``candidate_features``);
5. a small learned ranking (boosted trees trained on synthetic patients, stored as JSON:
   ``candidate_ranking``) scores them; foci scoring above its operating point are proposed,
   best first, with the skeletal site (``candidate_sites``) and a short reason.

Every candidate is an automatic proposal that a reader must confirm: delete, move, add what
was missed. The ranking model is trained on synthetic data only.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from BoneOligoMetLib.errors import Progress
from BoneOligoMetLib.image.geometry import require_overlap
from BoneOligoMetLib.image.units import require_hu, require_suv
from BoneOligoMetLib.lesions.candidate_features import FEATURES, candidate_features
from BoneOligoMetLib.lesions.candidate_maps import (
    CandidateConfig,
    CandidateError,
    WorkMaps,
    collect_foci,
    work_maps,
)
from BoneOligoMetLib.lesions.candidate_ranking import RankingModel, load_ranking
from BoneOligoMetLib.lesions.candidate_sites import find_landmarks, site_of

__all__ = [
    "FEATURES",
    "PROPOSAL_NOTE",
    "SITES",
    "Candidate",
    "CandidateConfig",
    "CandidateError",
    "CandidateSet",
    "candidate_rois",
    "find_candidates",
    "search",
    "slicer_candidates",
]

log = logging.getLogger(__name__)

SITES = ("spine", "pelvis", "ribs", "limbs", "skull", "other")
PROPOSAL_NOTE = "automatic proposal: a reader must confirm it"


@dataclass
class Candidate:
    """One focus. ``point_lps_mm`` lies inside it (usable as a ``segment`` seed)."""

    point_lps_mm: tuple[float, float, float]
    source: str  # "pet" (an FDG focus) or "ct" (a sclerotic region without one)
    suv_max: float  # the hottest PET voxel within 4 mm
    volume_ml: float  # PET: voxels ≥ half-way from the marrow to SUVmax within 12 mm; CT: region
    site: str = "other"
    score: float = 0.0
    rank: int = 0
    why: str = ""
    features: dict[str, float] = field(default_factory=dict)
    index: tuple[int, int, int] = (0, 0, 0)  # its voxel on the work grid (z, y, x)
    region: Optional[tuple] = field(default=None, repr=False)  # CT: (work-grid box, mask)

    def row(self) -> dict:
        """The CSV row: rank, x, y, z (LPS mm), suvmax, volume_ml, site, score, why, source."""
        x, y, z = self.point_lps_mm
        return {
            "rank": self.rank,
            "x": round(x, 1),
            "y": round(y, 1),
            "z": round(z, 1),
            "suvmax": round(self.suv_max, 2),
            "volume_ml": round(self.volume_ml, 2),
            "site": self.site,
            "score": round(self.score, 4),
            "why": self.why,
            "source": self.source,
        }


@dataclass
class Search:
    """Every focus of one study with its features (before the ranking)."""

    maps: WorkMaps
    points: np.ndarray  # (n, 3) work-grid voxels
    from_ct: np.ndarray  # (n,) bool
    regions: dict[int, tuple]  # CT regions by focus number
    features: np.ndarray  # (n, len(FEATURES))
    seconds: float

    def points_lps(self) -> np.ndarray:
        return np.array([self.maps.point(p) for p in self.points], dtype=float).reshape(-1, 3)


@dataclass
class CandidateSet:
    """The proposed candidates (ranked) and every scored focus (for an FROC)."""

    candidates: list[Candidate]  # score > threshold, best first, at most ``max_candidates``
    scored: list[Candidate]  # every focus, best first
    threshold: float
    marrow_suv: float  # the patient's median marrow SUV
    seconds: float
    search: Search = field(repr=False)


def search(
    ct: sitk.Image,
    suv: sitk.Image,
    config: Optional[CandidateConfig] = None,
    progress: Optional[Progress] = None,
) -> Search:
    """Every focus of the study and its features (steps 1–4); CT in HU, PET in SUV."""
    started = time.perf_counter()
    config = config or CandidateConfig()
    require_hu(ct, "CT")
    require_suv(suv, "PET")
    require_overlap(ct, suv, ("CT", "PET"))
    if progress is not None:
        progress(0.05, "bone and marrow maps")
    maps = work_maps(ct, suv, config)
    if progress is not None:
        progress(0.4, "FDG foci and CT departures")
    points, from_ct, regions = collect_foci(maps, config)
    if progress is not None:
        progress(0.6, f"features of {len(points)} foci")
    features = candidate_features(maps, ct, points, from_ct)
    return Search(maps, points, from_ct, regions, features, time.perf_counter() - started)


def _why(values: dict[str, float], source: str) -> str:
    """A short reason: "SUVmax 4.1, 2.0× marrow, lytic CT"."""
    suv = float(np.exp(values["log_suv"]))
    parts = [f"SUVmax {suv:.1f}", f"{np.exp(values['log_over_local']):.1f}× marrow"]
    lytic = values["lytic_fraction"] >= 0.3 or values["departure"] <= -1.2
    sclerotic = values["sclerotic_fraction"] >= 0.3 and values["departure"] >= 1.0
    if source == "ct":
        parts.append("sclerotic region found on CT")
    elif lytic and sclerotic:
        parts.append("mixed CT")
    elif lytic:
        parts.append("lytic CT")
    elif sclerotic:
        parts.append("sclerotic CT")
    else:
        parts.append("CT like marrow")
    if values["spill_ratio"] >= 0.3:
        parts.append("beside a hot organ")
    if values["gap_mm"] <= 6.0 and values["ball_bone_fraction"] < 0.5:
        parts.append("at a joint")
    return ", ".join(parts)


def _sites(maps: WorkMaps, points: np.ndarray) -> list[str]:
    """The site of each point, from the CT's landmarks (axis-aligned grids; else "other")."""
    direction = np.asarray(maps.grid.GetDirection()).reshape(3, 3)
    if not np.allclose(np.abs(direction), np.eye(3), atol=1e-3) or len(points) == 0:
        return ["other"] * len(points)
    spacing = np.abs(np.diag(direction)) * np.asarray(maps.grid.GetSpacing())
    signs = np.sign(np.diag(direction))
    origin = maps.grid.GetOrigin()
    marks = find_landmarks(maps.hu, maps.body, maps.bone, spacing * signs, (origin[0], origin[1]))
    out = []
    for point in points:
        physical = maps.point(point)
        out.append(site_of(marks, point, physical[:2], abs(spacing[2])))
    return out


def find_candidates(
    ct: sitk.Image,
    suv: sitk.Image,
    *,
    max_candidates: Optional[int] = None,
    model=None,
    config: Optional[CandidateConfig] = None,
    progress: Optional[Progress] = None,
) -> CandidateSet:
    """Candidate bone lesions of a whole study, ranked (see the module docstring).

    ``model``: a :class:`~.candidate_ranking.RankingModel`, a path to one, or None for the
    packaged model. ``max_candidates`` caps the proposals (the best first).
    """
    if max_candidates is not None and max_candidates < 0:
        raise CandidateError(f"max_candidates must be ≥ 0, got {max_candidates}")
    started = time.perf_counter()
    ranking = model if isinstance(model, RankingModel) else load_ranking(model)
    found = search(ct, suv, config, progress)
    if progress is not None:
        progress(0.85, "ranking")
    scores = ranking.score(found.features) if len(found.points) else np.zeros(0)
    sites = _sites(found.maps, found.points)
    scored = []
    for number, (point, score) in enumerate(zip(found.points, scores)):
        values = dict(zip(FEATURES, (float(v) for v in found.features[number])))
        source = "ct" if found.from_ct[number] else "pet"
        region = found.regions.get(number)
        if region is not None:
            volume = float(region[1].sum()) * found.maps.voxel_ml
        else:
            volume = float(np.expm1(values["log_focus_ml"]))
        scored.append(
            Candidate(
                point_lps_mm=tuple(float(c) for c in found.maps.point(point)),  # type: ignore[arg-type]
                source=source,
                suv_max=float(np.exp(values["log_suv"])),
                volume_ml=volume,
                site=sites[number],
                score=float(score),
                why=_why(values, source),
                features=values,
                index=tuple(int(v) for v in point),  # type: ignore[arg-type]
                region=region,
            )
        )
    scored.sort(key=lambda c: -c.score)
    for rank, candidate in enumerate(scored, start=1):
        candidate.rank = rank
    proposed = [c for c in scored if c.score > ranking.threshold]
    if max_candidates is not None:
        proposed = proposed[:max_candidates]
    if progress is not None:
        progress(1.0, f"{len(proposed)} candidate(s)")
    log.info(
        "%d foci, %d proposed (score > %.3f) in %.1f s",
        len(scored),
        len(proposed),
        ranking.threshold,
        time.perf_counter() - started,
    )
    return CandidateSet(
        candidates=proposed,
        scored=scored,
        threshold=ranking.threshold,
        marrow_suv=found.maps.patient_marrow_suv,
        seconds=time.perf_counter() - started,
        search=found,
    )


# --- regions of interest ----------------------------------------------------------------------


def _focus_region(maps: WorkMaps, index: Sequence[int], radius_mm: float = 12.0) -> tuple:
    """The FDG focus at ``index`` on the work grid: voxels ≥ half-way from the marrow to its
    SUV, connected to it, in or next to the (closed) bone, within ``radius_mm``."""
    spacing = np.asarray(maps.grid.GetSpacing())[::-1]
    reach = np.ceil(radius_mm / spacing).astype(int)
    low = np.maximum(np.asarray(index) - reach, 0)
    high = np.minimum(np.asarray(index) + reach + 1, maps.suv.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    local = tuple(int(i - a) for i, a in zip(index, low))
    values = maps.suv[box]
    level = 0.5 * (values[local] + maps.marrow_suv[tuple(index)])
    near = ndimage.binary_dilation(maps.closed_bone[box], iterations=1)
    components, _ = ndimage.label((values >= level) & near)
    mask = components == components[local] if components[local] else np.zeros_like(near)
    mask[local] = True
    return box, mask


def _work_mask_on_ct(maps: WorkMaps, region: tuple, ct: sitk.Image) -> sitk.Image:
    """A work-grid (box, mask) as a 0/1 image on a crop of the CT grid (nearest voxel)."""
    from BoneOligoMetLib.image.geometry import crop_to_physical_box

    box, mask = region
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    start = [int(b.start) for b in box][::-1]
    image.SetOrigin(maps.grid.TransformIndexToPhysicalPoint(start))
    image.SetSpacing(maps.grid.GetSpacing())
    image.SetDirection(maps.grid.GetDirection())
    corners = np.array(
        [
            image.TransformContinuousIndexToPhysicalPoint(corner)
            for corner in itertools.product(*[(-0.5, n - 0.5) for n in image.GetSize()])
        ]
    )
    crop = crop_to_physical_box(ct, corners.min(axis=0), corners.max(axis=0))
    return sitk.Resample(image, crop, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def candidate_rois(
    ct: sitk.Image,
    suv: sitk.Image,
    found: CandidateSet,
    candidates: Optional[Sequence[Candidate]] = None,
    progress: Optional[Progress] = None,
) -> sitk.Image:
    """The ROIs of ``candidates`` (default: the proposed ones) on the CT grid, each labelled
    with its rank: an FDG focus grown like ``segment`` (SUV ≥ 2.2 region, PET+CT border), a
    CT-found or faint focus (no SUV ≥ 2.2 near it) as its region on the work grid. Where two
    overlap, the better-ranked keeps the voxels."""
    from BoneOligoMetLib.errors import SegmentationError
    from BoneOligoMetLib.lesions.segment import segment_lesion

    chosen = list(found.candidates if candidates is None else candidates)
    maps = found.search.maps
    top = max([c.rank for c in chosen], default=0)
    labels = np.zeros(ct.GetSize()[::-1], dtype=np.uint8 if top < 256 else np.uint16)
    for number, candidate in enumerate(sorted(chosen, key=lambda c: c.rank)):
        if progress is not None:
            progress(number / max(len(chosen), 1), f"ROI of candidate {candidate.rank}")
        mask = None
        if candidate.source == "pet":
            try:
                mask = segment_lesion(ct, suv, candidate.point_lps_mm, check_units=False).mask
            except SegmentationError as error:
                log.info("candidate %d: %s; its FDG focus instead", candidate.rank, error)
        if mask is None:
            region = candidate.region or _focus_region(maps, candidate.index)
            mask = _work_mask_on_ct(maps, region, ct)
        start = ct.TransformPhysicalPointToIndex(mask.GetOrigin())[::-1]
        region_array = sitk.GetArrayViewFromImage(mask).astype(bool)
        window = labels[tuple(slice(a, a + n) for a, n in zip(start, region_array.shape))]
        window[region_array & (window == 0)] = candidate.rank
    if progress is not None:
        progress(1.0, f"{len(chosen)} ROI(s)")
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    return image


# --- for the Slicer panel ---------------------------------------------------------------------


def slicer_candidates(
    ct: sitk.Image,
    suv: sitk.Image,
    *,
    max_candidates: Optional[int] = 10,
    progress: Optional[Progress] = None,
) -> list[dict]:
    """What the "Find candidate lesions" button shows: the proposed candidates, best first, as
    dicts with ``name`` (e.g. "C1 SUV 4.1"), ``rank``, ``point_lps`` (mm; negate x and y for
    a RAS markup), ``suv_max``, ``score``, ``site``, ``why`` and ``note`` (an automatic
    proposal a reader must confirm)."""
    found = find_candidates(ct, suv, max_candidates=max_candidates, progress=progress)
    return [
        {
            "name": f"C{c.rank} SUV {c.suv_max:.1f}",
            "rank": c.rank,
            "point_lps": c.point_lps_mm,
            "suv_max": c.suv_max,
            "score": c.score,
            "site": c.site,
            "why": c.why,
            "note": PROPOSAL_NOTE,
        }
        for c in found.candidates
    ]
