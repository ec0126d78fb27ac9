"""A model bundle: everything ``classify`` needs, in a folder that loads without running code.

Layout::

    bundle/manifest.json        format, name, synthetic flag and warning, the feature schema (the
                                model's input columns, in order), the extraction settings with
                                the digest of each feature group's parameters, the threshold,
                                the training cohort's summary, metrics, library versions
    bundle/model.skops          the fitted scikit-learn Pipeline (skops: only allow-listed
                                types are rebuilt; nothing is unpickled)
    bundle/deep/ct/, deep/pet/  the BasicNet networks (safetensors + network.json), when the
                                schema has dl_* columns
    bundle/reference_*.nrrd     a small synthetic lesion: CT in HU, SUV PET, label image
    bundle/reference.json       the values of the schema's image features
                                (met_*, ct_*, pet_*, petct_*, dl_*) for it when the bundle was
                                saved, with the liver reference point and the versions used

Loading checks the format, that every file the manifest names is there with its SHA-256, that
the radiomics parameters here give the digests the model was trained with, and that the
networks give the deep columns the schema expects. Whether this environment computes the
features the model was trained on is decided by what they are, not by version strings: the
reference lesion's features are recomputed and must equal the stored ones to within rounding
(:data:`REFERENCE_RTOL`, :data:`DEEP_ATOL_SD`); a mismatch is refused naming the features that
moved. The verdict is cached per bundle and environment (:func:`cache_dir`), so only the first
load pays for it. A bundle saved before reference cases existed is judged by its parameter
digests alone (with the versions it recorded), and the log says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from BoneOligoMetLib import __version__
from BoneOligoMetLib.deep.features import DeepFeatureExtractor
from BoneOligoMetLib.errors import BundleError
from BoneOligoMetLib.features.config import ExtractionConfig
from BoneOligoMetLib.io.files import atomic_write, file_sha256, json_default
from BoneOligoMetLib.models.reference import (
    REFERENCE_VALUES,
    cache_dir,
    check_reference,
    write_reference,
)

log = logging.getLogger(__name__)

FORMAT = "bone-oligomet-bundle/1"
MANIFEST = "manifest.json"
MODEL = "model.skops"
DEEP = "deep"
SYNTHETIC_WARNING = "synthetic demo model — not for clinical use"
# Types a bundle's pipeline may contain beyond skops' defaults: our transformers and the
# classifiers of the study's grid. Anything else in a file is refused.
TRUSTED_PREFIXES = (
    "BoneOligoMetLib.",
    "sklearn.",
    "xgboost.",
    "lightgbm.",
    "numpy.",
    "scipy.",
    "builtins.",
    "collections.",
)


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


@dataclass
class Bundle:
    """A loaded bundle: the pipeline, the extraction settings, the deep networks, the manifest."""

    folder: Path
    manifest: dict[str, Any]
    pipeline: Any
    extraction: Any  # features.ExtractionConfig
    deep: Any  # deep.features.DeepFeatureExtractor or None

    @property
    def schema(self) -> list[str]:
        return list(self.manifest["feature_schema"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("synthetic", False))

    @property
    def warning(self) -> str:
        return SYNTHETIC_WARNING if self.synthetic else str(self.manifest.get("warning", ""))

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.folder.name))

    def design(self, rows: Sequence[Mapping[str, Any]], where: str = "") -> np.ndarray:
        """The model's input: an (n, len(schema)) object array of the rows' values in schema
        order. A missing column is an error listing what is missing."""
        schema = self.schema
        for number, row in enumerate(rows):
            missing = [c for c in schema if c not in row]
            if missing:
                shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
                label = row.get("lesion_label", number)
                raise BundleError(
                    f"{where or self.folder}: lesion {label} lacks {len(missing)} of the model's "
                    f"features ({shown}); the features were extracted with other settings"
                )
        return np.asarray([[row[c] for c in schema] for row in rows], dtype=object)

    def predict_proba(self, rows: Sequence[Mapping[str, Any]], where: str = "") -> np.ndarray:
        """Probability of malignancy per row."""
        if not rows:
            return np.zeros(0)
        return np.asarray(self.pipeline.predict_proba(self.design(rows, where))[:, 1], float)


def save_bundle(
    folder: Union[str, Path],
    *,
    pipeline: Any,
    feature_schema: Sequence[str],
    threshold: float,
    extraction: Any,
    deep_folder: Optional[Union[str, Path]] = None,
    name: str = "BoneOligoMet model",
    synthetic: bool = False,
    training: Optional[Mapping[str, Any]] = None,
    metrics: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Write a bundle. ``extraction`` is the :class:`~.features.config.ExtractionConfig`
    the features were made with; ``deep_folder`` holds ``ct/`` and/or ``pet/`` networks (copied)."""
    import dataclasses
    import shutil

    import skops.io as sio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # The networks travel inside the bundle (deep/), checked by their hashes: no machine path.
    extraction = dataclasses.replace(extraction, deep_model=None)
    schema = [str(c) for c in feature_schema]
    if len(set(schema)) != len(schema):
        raise BundleError("the feature schema repeats a column")
    deep_columns = [c for c in schema if c.startswith("dl_")]
    if deep_columns and deep_folder is None:
        raise BundleError("the schema has dl_* columns: give the networks' folder")
    sio.dump(pipeline, folder / MODEL, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    if deep_folder is not None:
        target = folder / DEEP
        if target.exists():
            shutil.rmtree(target)
        for modality in ("ct", "pet"):
            source = Path(deep_folder) / modality
            if source.is_dir():
                target.mkdir(exist_ok=True)
                shutil.copytree(
                    source, target / modality, ignore=shutil.ignore_patterns("*.png", "*.csv")
                )
    import sklearn

    versions = {"bone-oligomet": __version__, "scikit-learn": sklearn.__version__}
    try:
        import radiomics

        versions["pyradiomics"] = radiomics.__version__
    except ImportError:  # pragma: no cover - a dependency
        pass
    deep = None
    if deep_columns:
        deep = DeepFeatureExtractor.from_folder(folder / DEEP, "cpu")
    write_reference(folder, extraction, deep, schema)
    manifest = {
        "format": FORMAT,
        "name": name,
        "synthetic": bool(synthetic),
        "warning": SYNTHETIC_WARNING if synthetic else "",
        "feature_schema": schema,
        "threshold": float(threshold),
        "extraction": extraction.as_mapping(),
        # parameters only: a changed parameter file; the reference case judges the software
        "settings_digests": {g: extraction.settings_digest(g) for g in extraction.groups},
        "reference": REFERENCE_VALUES,
        "training": dict(training or {}),
        "metrics": dict(metrics or {}),
        "versions": versions,
        "files": _files(folder),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=json_default) + "\n")
    return folder


def _load_pipeline(path: Path, digest: Optional[str] = None) -> Any:
    """The pipeline of a skops file; every type in it outside skops' defaults must match
    :data:`TRUSTED_PREFIXES`. The audit that lists those types (a pass over the whole file, a
    third of the load) is kept per file ``digest`` (its SHA-256, checked by the caller) in
    :func:`~.reference.cache_dir`; loading still refuses any type not on the list."""
    import skops.io as sio
    from skops import __version__ as skops_version
    from skops.io.exceptions import UntrustedTypesFoundException

    cached = None
    if digest is not None:
        cached = cache_dir() / "skops-audits" / f"{digest[:32]}-{skops_version}.json"
        try:
            untrusted = json.loads(cached.read_text())
            if isinstance(untrusted, list) and all(
                isinstance(t, str) and t.startswith(TRUSTED_PREFIXES) for t in untrusted
            ):  # a kept list cannot trust more than the prefixes do
                return sio.load(path, trusted=untrusted)
        except (OSError, ValueError, UntrustedTypesFoundException):
            pass  # none kept yet, unreadable, or short of the file's types: audit
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as error:
        reason = error.args[0] if error.args else type(error).__name__
        raise BundleError(f"{path}: not a skops file ({reason})") from None
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise BundleError(f"{path}: holds types that are not allowed in a bundle: {refused}")
    pipeline = sio.load(path, trusted=untrusted)
    if cached is not None:
        try:
            atomic_write(cached, (json.dumps(sorted(untrusted)) + "\n").encode())
        except OSError as error:  # audited again next time
            log.info("cannot keep the audit in %s (%s)", cached, error)
    return pipeline


def load_bundle(folder: Union[str, Path], device: Optional[str] = None) -> Bundle:
    """Read and check a bundle folder (see the module docstring)."""

    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder}: not a model bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    for name, digest in manifest.get("files", {}).items():
        file = folder / name
        if not file.is_file():
            raise BundleError(f"{folder}: {name} is missing")
        if file_sha256(file) != digest:
            raise BundleError(f"{folder}: {name} differs from the file the bundle was saved with")
    extraction = ExtractionConfig.from_mapping(manifest["extraction"])
    _check_settings(folder, manifest, extraction)
    pipeline = _load_pipeline(folder / MODEL, manifest.get("files", {}).get(MODEL))
    schema = list(manifest["feature_schema"])
    deep = None
    if any(c.startswith("dl_") for c in schema):
        deep = DeepFeatureExtractor.from_folder(folder / DEEP, device)
        expected = [c for c in schema if c.startswith("dl_")]
        missing = sorted(set(expected) - set(deep.columns))
        if missing:
            raise BundleError(f"{folder}: the networks give no {missing[:3]} …")
    n_in = getattr(pipeline, "n_features_in_", len(schema))
    if n_in != len(schema):
        raise BundleError(
            f"{folder}: the pipeline takes {n_in} features, the schema lists {len(schema)}"
        )
    bundle = Bundle(folder, manifest, pipeline, extraction, deep)
    if manifest.get("reference"):
        check_reference(bundle, hashlib.sha256(path.read_bytes()).hexdigest())
    else:
        log.warning(
            "%s: no reference case in the bundle (saved before they existed): its features are "
            "judged by the parameter digests only, not by recomputing them",
            folder,
        )
    return bundle


def _check_settings(folder: Path, manifest: Mapping[str, Any], extraction: Any) -> None:
    """The parameter digests: those of this version (``settings_digests``, parameters only), or
    those of a bundle saved before (``group_digests``, which mixed in the library's and
    pyradiomics' versions: recomputed with the versions the bundle recorded)."""
    digests = manifest.get("settings_digests")
    recorded = None
    if digests is None:
        digests = manifest.get("group_digests", {})
        versions = manifest.get("versions", {})
        recorded = {k: versions.get(k) for k in ("bone-oligomet", "pyradiomics")}
        if None in recorded.values():
            log.warning("%s: the bundle records no versions; its settings are not checked", folder)
            return
    for group, digest in digests.items():
        if group not in extraction.groups:
            continue
        if recorded is None:
            here = extraction.settings_digest(group)
        else:
            here = extraction.group_digest(group, versions=recorded)
        if here != digest:
            raise BundleError(
                f"{folder}: the {group} feature settings here (parameter files) differ from "
                f"those the model was trained with"
            )


# --- the reference case: is this environment computing the features the model was trained on?


def default_bundle_path() -> Path:
    """The packaged synthetic demo bundle."""
    return Path(__file__).parents[1] / "data" / "demo_bundle"
