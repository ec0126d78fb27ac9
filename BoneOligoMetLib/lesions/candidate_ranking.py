"""The learned ranking of candidate bone lesions: a small gradient-boosted tree ensemble, stored
as JSON (split features, thresholds, leaf values: numbers only, nothing executed on loading),
and how a focus is matched to a lesion (in it or within :data:`HIT_MM`).

It is trained on synthetic patients by :mod:`BoneOligoMetLib.synthetic.candidate_training`:

    python -m BoneOligoMetLib.synthetic.candidate_training          # retrain (~20 min, 2 cores)
    python -m BoneOligoMetLib.synthetic.candidate_training --check  # is the packaged model current?

The model stores the hash of its training recipe with the search's parameters and the feature
list (:func:`recipe_hash`), so that a stale model can be told (bump :data:`FEATURE_VERSION` when
the computation of a feature changes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from BoneOligoMetLib.lesions.candidate_features import FEATURES
from BoneOligoMetLib.lesions.candidate_maps import CandidateConfig, CandidateError

FORMAT = "bone-oligomet-candidate-ranking/1"
FEATURE_VERSION = 1
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "data" / "candidates" / "ranking.json"
HIT_MM = 5.0  # a focus in a lesion or within 5 mm of it finds it
_TREE_FIELDS = ("feature", "threshold", "left", "right", "leaf", "value", "missing_left")


@dataclass(frozen=True)
class RankingModel:
    """Boosted trees over :data:`~.candidates.FEATURES`; ``score`` is a probability-like 0–1."""

    features: tuple[str, ...]
    baseline: float
    trees: list[dict[str, np.ndarray]]
    threshold: float  # proposed: score > threshold
    recipe_sha256: str
    training: dict

    def score(self, X: np.ndarray) -> np.ndarray:
        """Scores (n,) of feature rows (n, len(features))."""
        X = np.asarray(X, dtype=np.float64)
        raw = np.full(X.shape[0], self.baseline)
        rows = np.arange(X.shape[0])
        for tree in self.trees:
            node = np.zeros(X.shape[0], dtype=np.int64)
            for _ in range(64):  # deeper than any tree
                leaf = tree["leaf"][node]
                if leaf.all():
                    break
                values = X[rows, tree["feature"][node]]
                go_left = np.where(
                    np.isnan(values), tree["missing_left"][node], values <= tree["threshold"][node]
                )
                child = np.where(go_left, tree["left"][node], tree["right"][node])
                node = np.where(leaf, node, child)
            raw += tree["value"][node]
        return 1.0 / (1.0 + np.exp(-raw))


def settings_hash(spec: dict[str, Any]) -> str:
    """SHA-256 of ``spec`` with the search's parameters and the features (JSON, sorted keys)."""
    spec = {
        **spec,
        "config": dataclasses.asdict(CandidateConfig()),
        "features": list(FEATURES),
        "feature_version": FEATURE_VERSION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def recipe_hash(recipe: dict[str, Any]) -> str:
    """The recipe with the search's parameters and the features it was trained on."""
    return settings_hash({"recipe": recipe})


def model_from_dict(data: Any, where: str) -> RankingModel:
    """A :class:`RankingModel` from its JSON data; a :class:`CandidateError` naming ``where``
    when the data are not a valid model of this version's features."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CandidateError(f"{where}: not a ranking model (format {FORMAT!r} expected)")
    if tuple(data.get("features", ())) != FEATURES:
        raise CandidateError(
            f"{where}: the model's features differ from this version's ({len(FEATURES)} "
            "features); retrain with python -m BoneOligoMetLib.synthetic.candidate_training"
        )
    trees = []
    try:
        for tree in data["trees"]:
            arrays = {
                "feature": np.asarray(tree["feature"], dtype=np.int64),
                "threshold": np.asarray(tree["threshold"], dtype=np.float64),
                "left": np.asarray(tree["left"], dtype=np.int64),
                "right": np.asarray(tree["right"], dtype=np.int64),
                "leaf": np.asarray(tree["leaf"], dtype=bool),
                "value": np.asarray(tree["value"], dtype=np.float64),
                "missing_left": np.asarray(tree["missing_left"], dtype=bool),
            }
            n = arrays["feature"].size
            if n == 0 or any(a.shape != (n,) for a in arrays.values()):
                raise ValueError("tree arrays of unequal length")
            inner = ~arrays["leaf"]
            for key in ("left", "right"):
                if np.any((arrays[key][inner] <= 0) | (arrays[key][inner] >= n)):
                    raise ValueError("a child index outside the tree")
            if np.any((arrays["feature"][inner] < 0) | (arrays["feature"][inner] >= len(FEATURES))):
                raise ValueError("a feature index outside the feature list")
            trees.append(arrays)
        return RankingModel(
            features=FEATURES,
            baseline=float(data["baseline"]),
            trees=trees,
            threshold=float(data["threshold"]),
            recipe_sha256=str(data.get("recipe_sha256", "")),
            training=dict(data.get("training", {})),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CandidateError(f"{where}: damaged ranking model ({error})") from None


def load_ranking(path: Union[str, Path, None] = None) -> RankingModel:
    """Read a ranking model (default: the packaged one); a clear error for a bad file."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise CandidateError(f"{path}: cannot read the ranking model ({error.strerror})") from None
    except ValueError:
        raise CandidateError(f"{path}: not a ranking model (not JSON)") from None
    return model_from_dict(data, str(path))


def match_lesions(
    points_lps: np.ndarray, lesion_labels, hit_mm: float = HIT_MM
) -> tuple[np.ndarray, np.ndarray]:
    """For each point (n, 3 LPS mm): the label of the lesion it lies in or within ``hit_mm`` of
    (0: none), and the distance (mm) to the nearest lesion voxel centre (inf: no lesion)."""
    import SimpleITK as sitk
    from scipy.spatial import cKDTree

    from BoneOligoMetLib.image.bone import physical_points

    labels = sitk.GetArrayViewFromImage(lesion_labels)
    index = np.argwhere(labels > 0)
    points_lps = np.asarray(points_lps, dtype=float).reshape(-1, 3)
    if index.size == 0 or points_lps.shape[0] == 0:
        return np.zeros(points_lps.shape[0], dtype=int), np.full(points_lps.shape[0], np.inf)
    tree = cKDTree(physical_points(lesion_labels, index))
    distance, nearest = tree.query(points_lps)
    values = labels[tuple(index.T)].astype(int)
    # a point inside a lesion is within half a voxel's diagonal (< 5 mm) of a lesion voxel centre
    hits = np.where(distance <= hit_mm, values[nearest], 0)
    return hits, distance
