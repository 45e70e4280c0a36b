"""The fill settings of the side panel: model, method, search parameters, mask dilation, scope, torch threads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QSpinBox

from core.fill import METHODS, MODEL_FREE, FillSettings
from core.registry import ModelInfo
from core.threads import AUTO, cpu_count

LOAD_CHECKPOINT = "Load checkpoint..."
AXIS_ROLE = Qt.ItemDataRole.UserRole + 1


def _int(lo: int, hi: int, step: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def _real(hi: float, decimals: int, step: float, value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class SettingsForm(QGroupBox):
    """Thin widget over FillSettings plus the app's own choices (scope, dilation, threads)."""

    checkpointRequested = Signal()

    def __init__(self) -> None:
        super().__init__("Settings")
        defaults = FillSettings()
        self.model = QComboBox()
        self.model.setToolTip("Generative model used to fill the mask: a shipped model or a checkpoint folder "
                              "(model.safetensors + config.json) loaded from disk.")
        self.model.activated.connect(self._model_activated)
        self._last_model = 0
        self.method = QComboBox()
        for name, description in METHODS.items():
            self.method.addItem(name, name)
            self.method.setItemData(self.method.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
        self.method.setCurrentIndex(max(0, self.method.findData(defaults.method)))
        self.method.setToolTip("Fill method of the engine (hover an entry for what it does).")
        self.lam = _real(10.0, 4, 0.001, defaults.lam, "Lambda: weight of the prior loss (how much realism counts "
                         "against matching the context). Paper value 0.003.")
        self.iterations = _int(1, 100000, 10, defaults.iterations,
                               "Adam steps on the latent code per restart; more is slower and usually better.")
        self.restarts = _int(1, 256, 1, defaults.restarts,
                             "Random starting points per slice; the restart with the lowest final loss wins.")
        self.window = _int(1, 31, 2, defaults.window,
                           "Context-weight window in model pixels (odd): known pixels near the hole count more.")
        self.window.editingFinished.connect(lambda: self.window.setValue(self.window.value() | 1))
        self.blend = QCheckBox("Poisson blending")
        self.blend.setChecked(defaults.blend)
        self.blend.setToolTip("Blend the generated content into the surrounding tissue (gradient-domain). "
                              "Off: paste the generator's output as is.")
        self.mirror = _real(1.0, 2, 0.05, defaults.mirror, "refine3d: share of the other hemisphere's mirrored detail "
                            "added to the fill (inpaint fill --mirror). 0 when the hemispheres differ, e.g. a midline "
                            "shift.")
        self.dilate = _int(0, 3, 1, 0, "Grow the mask by this many voxels in 3D before filling (like inpaint fill "
                                       "--dilate; lesion-filling practice: 1-2), so the lesion's rim is filled too.")
        self.dilate.setSuffix(" vox")
        self.scope = QComboBox()
        self.scope.addItem("All masked slices", "all")
        self.scope.addItem("Current slice", "slice")
        self.scope.setToolTip("Fill every painted voxel of the volume, or only those of the current slice "
                              "(in the model's plane).")
        self.threads = _int(AUTO, cpu_count(), 1, AUTO,
                            "Torch threads of the fill. Auto: all cores when the machine is idle, else one (on a "
                            "busy CPU one thread is 2-3 times faster than two).")
        self.threads.setSpecialValueText("Auto")
        form = QFormLayout(self)
        for label, widget in (("Model", self.model), ("Method", self.method), ("Mirror detail", self.mirror),
                              ("Lambda", self.lam),
                              ("Iterations", self.iterations), ("Restarts", self.restarts), ("Window", self.window),
                              ("", self.blend), ("Dilate mask", self.dilate), ("Scope", self.scope),
                              ("Threads", self.threads)):
            form.addRow(label, widget)
        self.fields = (self.model, self.method, self.mirror, self.lam, self.iterations, self.restarts, self.window, self.blend,
                       self.dilate, self.scope, self.threads)
        self.search_fields = (self.model, self.lam, self.iterations, self.restarts, self.window, self.blend)
        self.method.currentIndexChanged.connect(lambda _index: self._enable_search_fields())
        self._enable_search_fields()

    # models ----------------------------------------------------------------------------------------
    def set_models(self, models: list[ModelInfo], default: Optional[str]) -> None:
        self.model.clear()
        for info in models:
            self.model.addItem(f"{info.name} ({info.kind}, {info.axis})", info.name)
            self.model.setItemData(self.model.count() - 1, info.axis, AXIS_ROLE)
        self.model.addItem(LOAD_CHECKPOINT, None)
        names = [info.name for info in models]
        self._last_model = names.index(default) if default in names else 0
        self.model.setCurrentIndex(self._last_model)

    def add_checkpoint(self, path: Path, axis: str) -> None:
        index = self.model.count() - 1
        self.model.insertItem(index, f"{path.name} (checkpoint)", str(path))
        self.model.setItemData(index, axis, AXIS_ROLE)
        self.model.setCurrentIndex(index)
        self._last_model = index

    def _model_activated(self, index: int) -> None:
        if self.model.itemData(index) is None:
            self.model.setCurrentIndex(self._last_model)
            self.checkpointRequested.emit()
        else:
            self._last_model = index

    def model_choice(self) -> Optional[tuple[str, str]]:
        """(shipped name or checkpoint path, plane) of the selected model, or None."""
        key = self.model.currentData()
        return None if key is None else (key, self.model.currentData(AXIS_ROLE))

    # settings --------------------------------------------------------------------------------------
    def fill_settings(self, preview_every: int) -> FillSettings:
        return FillSettings(iterations=self.iterations.value(), restarts=self.restarts.value(),
                            lam=self.lam.value(), window=self.window.value() | 1, blend=self.blend.isChecked(),
                            method=self.method.currentData(), mirror=self.mirror.value(),
                            preview_every=preview_every)

    def set_enabled(self, enabled: bool) -> None:
        for widget in self.fields:
            widget.setEnabled(enabled)
        if enabled:
            self._enable_search_fields()

    def uses_latent_search(self) -> bool:
        """Whether the chosen method searches a slice model's latent space (refine3d does not)."""
        return self.method.currentData() not in MODEL_FREE

    def _enable_search_fields(self) -> None:
        for widget in self.search_fields:
            widget.setEnabled(self.uses_latent_search())
        self.mirror.setEnabled(self.method.currentData() == "refine3d")
