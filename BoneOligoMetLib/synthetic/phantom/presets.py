"""Scanner presets: the CT and PET grids and the PET resolution model of a synthetic study.

The anatomy is the same in every preset (physical mm); a preset only chooses grids and field.

- ``full``: a GE Discovery 710 whole-body study (§2.2: 3.27 mm slices, mid-femur to vertex):
  CT 512×512 at 0.977 mm (50 cm field), PET 192×192 at 3.646 mm (70 cm), 311 slices of 3.27 mm
  from z = −190 mm (mid-femur) to +827 mm (vertex).
- ``small``: for tests and quick cohorts: CT 200×152 at 2.0 mm, PET 100×76 at 4.0 mm, 144 slices
  of 3.27 mm from z = −75 mm (below the lesser trochanters) to +393 mm (lower heart): femora,
  pelvis, lumbar and lower thoracic spine, ribs 6–12, liver, bladder. No skull: skull lesions
  only occur in ``full``.

PET and CT slices coincide in z (as on the GE scanners when both use 3.27 mm). The PET activity
is built on a grid that splits each PET voxel 2×2 in-plane; in ``small`` that is the CT grid.
"""

from __future__ import annotations

from dataclasses import dataclass

from BoneOligoMetLib.synthetic.phantom.grid import Grid

SLICE_MM = 3.27  # §2.2


@dataclass(frozen=True)
class Preset:
    """Grids and resolution of one kind of synthetic study."""

    name: str
    ct_grid: Grid
    pet_grid: Grid
    activity_subdivision: tuple[int, int, int]  # PET voxel split for the activity grid
    pet_fwhm_mm: float  # system resolution of the reconstructed image (PSF + post-filter)
    pet_post_filter_fwhm_mm: float  # part of pet_fwhm_mm applied after noise (correlates it)
    ct_blur_fwhm_mm: float  # CT in-plane resolution
    ct_noise_hu: float  # CT noise (SD, HU) for a 60 kg patient; ∝ 1/√(pixel area)

    @property
    def activity_grid(self) -> Grid:
        return self.pet_grid.subdivided(self.activity_subdivision)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "ct": self.ct_grid.describe(),
            "pet": self.pet_grid.describe(),
            "pet_fwhm_mm": self.pet_fwhm_mm,
        }


def _small() -> Preset:
    pet = Grid.centred((100, 76, 144), (4.0, 4.0, SLICE_MM), (0.0, 5.0), -75.0)
    return Preset(
        name="small",
        ct_grid=pet.subdivided((2, 2, 1)),
        pet_grid=pet,
        activity_subdivision=(2, 2, 1),
        pet_fwhm_mm=6.5,
        pet_post_filter_fwhm_mm=3.0,
        ct_blur_fwhm_mm=1.2,
        ct_noise_hu=7.5,
    )


def _full() -> Preset:
    return Preset(
        name="full",
        ct_grid=Grid.centred((512, 512, 311), (500.0 / 512,) * 2 + (SLICE_MM,), (0.0, 5.0), -190.0),
        pet_grid=Grid.centred(
            (192, 192, 311), (700.0 / 192,) * 2 + (SLICE_MM,), (0.0, 5.0), -190.0
        ),
        activity_subdivision=(2, 2, 1),
        pet_fwhm_mm=6.5,
        pet_post_filter_fwhm_mm=3.0,
        ct_blur_fwhm_mm=1.2,
        ct_noise_hu=15.0,
    )


PRESETS = {"small": _small(), "full": _full()}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``small`` or ``full``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown phantom preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None
