"""Deep features of lesions: ``dl_ct_*`` and ``dl_pet_*`` columns (the study's "pre-fusion").

Each modality's network gives the penultimate max pooling's output pooled to a vector; each
vector is z-normalised with its training set's mean and SD (stored in ``network.json``) and the
two are concatenated, CT first. A model folder holds one sub-folder per modality (``ct/``,
``pet/``), as ``bone-oligomet train-deep`` writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk

from BoneOligoMetLib.deep.config import MODALITIES
from BoneOligoMetLib.deep.infer import run_features
from BoneOligoMetLib.deep.model_io import LoadedNetwork, load_network
from BoneOligoMetLib.deep.patches import lesion_patches
from BoneOligoMetLib.errors import ModelFileError
from BoneOligoMetLib.image.geometry import Region
from BoneOligoMetLib.image.labels import label_regions


class DeepFeatureExtractor:
    """Networks by modality; ``case_features`` gives each lesion's ``dl_*`` columns."""

    def __init__(self, networks: Mapping[str, LoadedNetwork]) -> None:
        if not networks:
            raise ModelFileError("no deep-feature network given")
        for modality, network in networks.items():
            if network.modality != modality:
                raise ModelFileError(
                    f"{network.folder}: a {network.modality} network given as the {modality} one"
                )
        self.networks = {m: networks[m] for m in MODALITIES if m in networks}

    @classmethod
    def from_folder(
        cls, folder: Union[str, Path], device: Optional[str] = None
    ) -> DeepFeatureExtractor:
        """The ``ct/`` and ``pet/`` networks under ``folder`` (either may be absent)."""
        folder = Path(folder)
        found = {m: folder / m for m in MODALITIES if (folder / m / "network.json").is_file()}
        if not found:
            raise ModelFileError(f"{folder}: no ct/ or pet/ network folder (network.json) found")
        return cls({m: load_network(path, device) for m, path in found.items()})

    @property
    def columns(self) -> list[str]:
        return [name for network in self.networks.values() for name in network.feature_names]

    def digest(self) -> str:
        """Identifies the networks (their weights' hashes and patch settings) for caching."""
        import hashlib
        import json

        spec = {
            m: [n.meta.get("weights_sha256"), n.config.as_mapping()["patch"]]
            for m, n in self.networks.items()
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def case_features(
        self,
        ct: sitk.Image,
        suv: sitk.Image,
        lesions: sitk.Image,
        *,
        labels: Optional[Sequence[int]] = None,
        regions: Optional[Mapping[int, Region]] = None,
        name: str = "case",
    ) -> dict[int, dict[str, float]]:
        """``{label: {dl_ct_000: z, ...}}`` for every lesion (or ``labels``) of a patient; CT in
        HU, PET in SUV, lesions a label image (any grid)."""

        regions = regions if regions is not None else label_regions(lesions)
        chosen = sorted(regions) if labels is None else [int(v) for v in labels]
        rows: dict[int, dict[str, float]] = {label: {} for label in chosen}
        for modality, network in self.networks.items():
            patches = lesion_patches(
                ct,
                suv,
                lesions,
                network.config.patch,
                labels=chosen,
                modalities=(modality,),
                regions=regions,
                name=name,
            )
            images = np.stack([p.images[modality] for p in patches])
            values = network.normalise(run_features(network.model, images))
            for patch, vector in zip(patches, values):
                rows[patch.label].update(zip(network.feature_names, (float(v) for v in vector)))
        return rows
