"""The deep branch: BasicNet, patches, training, saving/loading, deep features, train-deep."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from BoneOligoMetLib.deep.config import DeepConfig, PatchConfig, preset
from BoneOligoMetLib.deep.data import PatchSet
from BoneOligoMetLib.deep.infer import run_batches, run_features
from BoneOligoMetLib.deep.model_io import load_network, save_network
from BoneOligoMetLib.deep.network import BasicNet, build_network, count_parameters
from BoneOligoMetLib.deep.patches import lesion_patches
from BoneOligoMetLib.deep.train import binary_metrics, train_network
from BoneOligoMetLib.errors import (
    ArchitectureError,
    DeepConfigError,
    ModelFileError,
    SplitError,
    UnitsError,
)
from BoneOligoMetLib.models.splits import patient_folds, patient_split


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread: these nets are tiny, and two OpenMP threads on a busy 2-core machine wait on
    each other (10× slower here); results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- network ---------------------------------------------------------------------------------


def test_basicnet_has_the_studys_size_and_outputs():
    model = BasicNet().eval()
    n = count_parameters(model)
    print(f"BasicNet parameters: {n:,}")
    assert abs(n - 4.2e6) / 4.2e6 < 0.10  # §2.4: 4.2 M
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad():
        out = model(x)
        features = model.features(x)
    assert out["logits"].shape == (2, 2)
    assert [tuple(s.shape[2:]) for s in out["segmentation"]] == [
        (32,) * 3,
        (16,) * 3,
        (8,) * 3,
        (4,) * 3,
    ]
    assert out["features"].shape == (2, 64)  # penultimate max pooling: 64 channels
    torch.testing.assert_close(features, out["features"])


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_basicnet_blocks_are_monais_blocks(norm):
    """BasicNet's blocks are written out in PyTorch (no MONAI import to use a network): the same
    parameters (names, shapes and, for a seed, values) and bit for bit the same outputs, in
    training and in inference, as the net built from MONAI's UnetResBlock and UnetOutBlock."""
    blocks = pytest.importorskip("monai.networks.blocks")
    from torch import nn

    class MonaiBasicNet(BasicNet):  # the blocks this module used before they were written out
        def __init__(self, channels, norm):
            nn.Module.__init__(self)
            self.channels, self.levels = channels, len(channels)
            self.encoder = nn.ModuleList(
                blocks.UnetResBlock(3, 1 if i == 0 else channels[i - 1], c, 3, 1, norm)
                for i, c in enumerate(channels)
            )
            self.pool = nn.MaxPool3d(2)
            self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
            self.reduce = nn.ModuleList(
                nn.Conv3d(channels[i + 1], channels[i], kernel_size=1)
                for i in range(self.levels - 1)
            )
            self.decoder = nn.ModuleList(
                blocks.UnetResBlock(3, 2 * channels[i], channels[i], 3, 1, norm)
                for i in range(self.levels - 1)
            )
            self.heads = nn.ModuleList(
                blocks.UnetOutBlock(3, channels[i], 1) for i in range(self.levels - 1)
            )
            self.classifier = nn.Sequential(
                nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(channels[-1], 2)
            )

    channels = (4, 8, 8, 12)
    torch.manual_seed(3)
    ours = BasicNet(channels=channels, norm=norm)
    torch.manual_seed(3)
    theirs = MonaiBasicNet(channels, norm)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    x = torch.rand(2, 1, 16, 16, 16)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        torch.manual_seed(5)  # the dropout's draw
        mine = ours(x)
        torch.manual_seed(5)
        reference = theirs(x)
        assert torch.equal(mine["logits"], reference["logits"])
        assert torch.equal(mine["features"], reference["features"])
        for s, r in zip(mine["segmentation"], reference["segmentation"]):
            assert torch.equal(s, r)
    if norm == "batch":  # the running statistics moved alike in training
        for name, value in ours.state_dict().items():
            assert torch.equal(value, theirs.state_dict()[name]), name


def test_resnet_backbone_and_unknown_names():
    model = build_network("resnet10").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32, 32))
    assert out["logits"].shape == (2, 2)
    assert out["features"].shape == (2, model.feature_size)
    with pytest.raises(ArchitectureError, match="did you mean 'basicnet'"):
        build_network("basicnett")
    with pytest.raises(ArchitectureError, match="positive channel"):
        BasicNet(channels=(4, 8))


def test_config_refuses_unknown_and_impossible_settings():
    with pytest.raises(DeepConfigError, match="did you mean 'epochs'"):
        DeepConfig.from_mapping({"train": {"epoch": 3}})
    with pytest.raises(DeepConfigError, match="multiple of 16"):
        PatchConfig(size=20)
    with pytest.raises(DeepConfigError, match="class_weights"):
        preset("study", {"train": {"class_weights": (0.3,)}})
    study = preset("study")
    assert study.train.class_weights == (0.3, 0.7)  # §2.4
    assert (study.train.epochs, study.train.batch_size, study.train.learning_rate) == (
        1001,
        32,
        1e-4,
    )
    assert (study.train.validate_every, study.train.patience, study.train.workers) == (10, 5, 8)
    assert DeepConfig.from_mapping(study.as_mapping()) == study


# --- patches -----------------------------------------------------------------------------------


def _sphere_case(centre_mm=(10.0, -6.0, 14.0)):
    """CT (2 mm) and PET (4 mm) over one cube, with a lesion sphere at ``centre_mm`` (LPS)."""

    def grid(spacing, n):
        image = sitk.Image([n] * 3, sitk.sitkFloat32)
        image.SetSpacing([spacing] * 3)
        image.SetOrigin([-(n - 1) * spacing / 2] * 3)
        return image

    ct, pet = grid(2.0, 60), grid(4.0, 30)

    def distance(image):
        z, y, x = np.indices(image.GetSize()[::-1])
        origin, spacing = np.asarray(image.GetOrigin()), image.GetSpacing()[0]
        points = np.stack([x, y, z], -1) * spacing + origin
        return np.linalg.norm(points - np.asarray(centre_mm), axis=-1)

    ct_array = np.where(distance(ct) < 8, 900.0, 40.0).astype(np.float32)
    pet_array = np.where(distance(pet) < 8, 12.0, 1.0).astype(np.float32)
    lesion = (distance(ct) < 8).astype(np.uint8) * 3
    out = []
    for array, like in ((ct_array, ct), (pet_array, pet), (lesion, ct)):
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(like)
        out.append(image)
    return out


def test_patches_are_centred_on_the_lesion_in_physical_space():
    ct, pet, lesions = _sphere_case()
    config = PatchConfig(size=16, spacing_mm=2.0, ct_window_hu=(-200, 1800), pet_range_suv=(0, 20))
    (patch,) = lesion_patches(ct, pet, lesions, config)
    assert patch.label == 3
    np.testing.assert_allclose(patch.centre_lps_mm, (10.0, -6.0, 14.0), atol=0.5)
    centre = (slice(6, 10),) * 3
    # CT 900 HU in the window (-200, 1800) → 0.55; PET 12 SUV of 20 → 0.6, both at the centre
    assert patch.images["ct"][centre].mean() == pytest.approx(0.55, abs=0.02)
    assert patch.images["pet"][centre].mean() == pytest.approx(0.6, abs=0.06)
    assert patch.images["ct"][0, 0, 0] == pytest.approx(0.12, abs=0.01)  # 40 HU background
    assert patch.mask[centre].all()
    assert not patch.mask[0, 0, 0]
    # the same physical box for CT and PET: their lesion profiles agree
    profile_ct = patch.images["ct"][8, 8] > 0.3
    profile_pet = patch.images["pet"][8, 8] > 0.3
    assert np.sum(profile_ct != profile_pet) <= 2


def test_patch_outside_the_images_is_a_named_error():
    ct, pet, lesions = _sphere_case()
    shifted = sitk.Image(pet)
    shifted.SetOrigin((500.0, 500.0, 500.0))
    with pytest.raises(Exception, match="P7 lesion 3 PET"):
        lesion_patches(ct, shifted, lesions, PatchConfig(size=16), name="P7")


def test_nan_in_a_patch_is_a_named_error():
    """A NaN the radiomics crop does not reach would spread through the net's features."""
    ct, pet, lesions = _sphere_case()
    array = sitk.GetArrayFromImage(pet)
    k, j, i = pet.TransformPhysicalPointToIndex((10.0 + 24.0, -6.0, 14.0))[::-1]
    array[k, j, i] = np.nan  # 24 mm from the centre: in the box the 32 mm patch reads
    holed = sitk.GetImageFromArray(array)
    holed.CopyInformation(pet)
    with pytest.raises(UnitsError, match=r"P7 lesion 3 PET patch: 1 voxel\(s\) are NaN"):
        lesion_patches(ct, holed, lesions, PatchConfig(size=16), name="P7")


# --- splits ------------------------------------------------------------------------------------


def test_patient_split_groups_and_stratifies():
    rng = np.random.default_rng(0)
    patients = np.repeat([f"P{i:03d}" for i in range(60)], 2)
    labels = rng.integers(0, 2, patients.size)
    train, test = patient_split(labels, patients, 0.3, seed=4)
    assert not set(patients[train]) & set(patients[test])
    assert 0.25 < test.size / labels.size < 0.35
    assert abs(labels[test].mean() - labels.mean()) < 0.1
    again = patient_split(labels, patients, 0.3, seed=4)
    np.testing.assert_array_equal(again[1], test)
    folds = patient_folds(labels, patients, k=5)
    assert sorted(np.concatenate([f[1] for f in folds]).tolist()) == list(range(labels.size))
    with pytest.raises(SplitError, match="one class"):
        patient_split(np.zeros(10), [str(i) for i in range(10)])


# --- training -------------------------------------------------------------------------------------


def _blob_patches(n: int = 64, size: int = 16, seed: int = 0) -> PatchSet:
    """Malignant: a bright PET blob with a dark CT core; benign: a faint blob, dense CT."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices((size,) * 3) - (size - 1) / 2
    labels = np.arange(n) % 2
    pet, ct, masks = [], [], []
    for label in labels:
        radius = rng.uniform(2.5, 4.0)
        blob = np.exp(-(x**2 + y**2 + z**2) / (2 * radius**2))
        contrast = rng.uniform(0.5, 0.8) if label else rng.uniform(0.1, 0.3)
        pet.append(0.05 + contrast * blob + rng.normal(0, 0.03, blob.shape))
        ct.append(0.3 + (-0.15 if label else 0.25) * blob + rng.normal(0, 0.03, blob.shape))
        masks.append((blob > 0.5).astype(np.uint8))
    return PatchSet(
        {"pet": np.asarray(pet, np.float32), "ct": np.asarray(ct, np.float32)},
        np.asarray(masks),
        labels.astype(np.int64),
        np.asarray([f"P{i // 2:03d}" for i in range(n)]),
        np.ones(n, dtype=np.int64),
    )


def _tiny(**train):
    return preset("tiny", {"train": {"epochs": 10, "validate_every": 2, "patience": 3, **train}})


def test_training_learns_a_separable_task_and_is_reproducible(tmp_path):
    patches = _blob_patches(96)
    train, test = patient_split(patches.labels, patches.patients, 0.3, seed=0)
    a, b = patient_split(patches.labels[train], patches.patients[train], 0.25, seed=1)
    config = _tiny()
    first = train_network(patches, "pet", config, train[a], train[b])
    second = train_network(patches, "pet", config, train[a], train[b])
    for key, value in first.model.state_dict().items():  # same seed on the CPU: same weights
        torch.testing.assert_close(value, second.model.state_dict()[key], rtol=0, atol=0)
    assert first.history == second.history
    probability, features = run_batches(first.model, patches.images["pet"][test])
    metrics = binary_metrics(patches.labels[test], probability)
    print("held-out AUC on separable blobs:", metrics)
    assert metrics["auc"] > 0.9
    assert features.shape == (test.size, first.model.feature_size)
    assert 1 <= first.best_epoch <= first.epochs_run
    assert {"val_auc", "val_loss", "val_sensitivity"} <= set(first.history[1])


def test_training_refuses_leaks_and_single_class_sets():
    patches = _blob_patches(16)
    config = _tiny(epochs=1)
    with pytest.raises(Exception, match="both the training and the validation"):
        train_network(patches, "ct", config, np.arange(12), np.arange(10, 16))
    with pytest.raises(Exception, match="one class"):
        train_network(patches, "ct", config, np.arange(0, 12, 2), np.arange(12, 16))


def test_saved_network_reloads_with_identical_features(tmp_path):
    patches = _blob_patches(32)
    config = _tiny(epochs=2)
    result = train_network(patches, "ct", config, np.arange(24), np.arange(24, 32))
    images = patches.images["ct"][:5]
    expected = run_features(result.model, images)
    folder = save_network(
        tmp_path / "ct", result.model, config, "ct",
        feature_mean=expected.mean(0), feature_std=expected.std(0) + 1,
        summary=result.summary(),
    )  # fmt: skip
    loaded = load_network(folder)
    np.testing.assert_array_equal(run_features(loaded.model, images), expected)
    assert loaded.feature_names[:2] == ["dl_ct_000", "dl_ct_001"]
    meta = json.loads((folder / "network.json").read_text())
    assert meta["config"]["train"]["class_weights"] == [0.3, 0.7]
    # a single lesion (padded batch on the CPU) gives the same row
    np.testing.assert_allclose(run_features(loaded.model, images[:1]), expected[:1], atol=1e-5)
    # weights changed behind the JSON's back are refused
    (folder / "weights.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_network(folder)


def test_half_precision_bundle_and_shape_mismatch(tmp_path):
    from safetensors.torch import load_file

    config = _tiny()
    model = build_network("basicnet", **config.network.options())
    folder = save_network(
        tmp_path / "pet", model, config, "pet", feature_mean=np.zeros(16), feature_std=np.ones(16),
        half=True,
    )  # fmt: skip
    assert (
        load_file(str(folder / "weights.safetensors"))["classifier.3.weight"].dtype == torch.float16
    )
    assert load_network(folder).modality == "pet"
    meta = json.loads((folder / "network.json").read_text())
    meta["config"]["network"]["channels"] = [8, 8, 16, 16]
    (folder / "network.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="does not fit the basicnet"):
        load_network(folder)


# --- cohort: train-deep and deep features ------------------------------------------------------


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    from BoneOligoMetLib.synthetic.phantom import generate_cohort

    return generate_cohort(12, seed=31, out_dir=tmp_path_factory.mktemp("deep_cohort"), workers=2)


def test_train_deep_command_and_deep_features(small_cohort, tmp_path, capsys):
    from BoneOligoMetLib.cli import main
    from BoneOligoMetLib.deep.features import DeepFeatureExtractor
    from BoneOligoMetLib.io.manifest import read_manifest

    out = tmp_path / "deep"
    code = main([
        "train-deep", "--features-from", str(small_cohort), "--out", str(out), "--preset", "tiny",
        "--epochs", "2", "--test-fraction", "0.3", "--threads", "1",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "held-out AUC" in printed
    assert "pre-fusion" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lesions"]["test"] > 0
    for modality in ("ct", "pet"):
        assert (out / modality / "curve.png").stat().st_size > 1000
        assert (out / modality / "weights.safetensors").is_file()
    split = (out / "split.csv").read_text().splitlines()
    sets = {}
    for line in split[1:]:
        patient, _, _, side = line.split(",")
        sets.setdefault(patient, set()).add(side)
    assert all(len(sides) == 1 for sides in sets.values())  # no patient on two sides
    assert list((out / "cache").glob("patches-*.npz"))

    extractor = DeepFeatureExtractor.from_folder(out)
    case = read_manifest(small_cohort).cases[0]
    ct, suv = sitk.ReadImage(case.ct), sitk.ReadImage(case.pet, sitk.sitkFloat32)
    lesions = sitk.ReadImage(case.lesions[0].lesions)
    rows = extractor.case_features(ct, suv, lesions, name=case.patient_id)
    label = case.lesions[0].lesion_label
    assert list(rows[label]) == extractor.columns
    assert extractor.columns[0] == "dl_ct_000"
    assert extractor.columns[-1].startswith("dl_pet_")
    assert all(np.isfinite(v) for v in rows[label].values())
    again = DeepFeatureExtractor.from_folder(out).case_features(ct, suv, lesions)
    assert again[label] == rows[label]  # reloaded networks: identical features

    # the cohort machinery: extract --deep adds the dl_* columns, resumably
    from BoneOligoMetLib.io.tables import read_table

    table = tmp_path / "features.csv"
    args = ["extract", "--manifest", str(small_cohort), "--out", str(table), "--images", "pet",
            "--deep", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    columns, table_rows = read_table(table)
    assert columns[-len(extractor.columns) :] == extractor.columns
    first = next(r for r in table_rows if r["patient_id"] == case.patient_id)
    np.testing.assert_allclose(
        [first[c] for c in extractor.columns], [rows[label][c] for c in extractor.columns],
        rtol=1e-6,
    )  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    assert "0 computed" in capsys.readouterr().out


def test_train_deep_without_labels_is_a_clear_error(tmp_path):
    from BoneOligoMetLib.cli import main

    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,lesion_label,lesions,ct,suv\nP1,1,l.nii.gz,c.nii.gz,s.nii.gz\n")
    assert main(["train-deep", "--features-from", str(manifest), "--out", str(tmp_path / "o")]) == 2


def test_init_checkpoint_is_transferred_or_refused():
    patches = _blob_patches(32)
    config = _tiny(epochs=1)
    base = train_network(patches, "pet", config, np.arange(24), np.arange(24, 32))
    fresh = train_network(patches, "pet", config, np.arange(24), np.arange(24, 32))
    warm = train_network(
        patches, "pet", config, np.arange(24), np.arange(24, 32),
        init_state=base.model.state_dict(),
    )  # fmt: skip
    key = "classifier.3.weight"
    assert not torch.equal(warm.model.state_dict()[key], fresh.model.state_dict()[key])
    alien = build_network("resnet10").state_dict()
    with pytest.raises(Exception, match="no tensor of the checkpoint fits"):
        train_network(patches, "pet", config, np.arange(24), np.arange(24, 32), init_state=alien)
