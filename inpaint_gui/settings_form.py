"""The fill settings of the side panel: model, method, the chosen method's parameters (`core.methods`), mask
dilation, scope, torch threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QSpinBox, QWidget

from core.fill import FillSettings
from core.methods import METHODS, FillMethod, Parameter, parameters
from core.registry import ModelInfo
from core.threads import AUTO, cpu_count

LOAD_CHECKPOINT = "Load checkpoint..."
AXIS_ROLE = Qt.ItemDataRole.UserRole + 1
SPIN_MAX = 2 ** 31 - 1  # a QSpinBox holds a C int


def _int(lo: int, hi: int, step: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def _real(lo: float, hi: float, decimals: int, step: float, value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def parameter_widget(parameter: Parameter) -> QWidget:
    """A check box (a switch) or a spin box over the parameter's range, its help as the tooltip."""
    tip = parameter.help[:1].upper() + parameter.help[1:] + "."
    if isinstance(parameter.default, bool):
        box = QCheckBox(parameter.label)
        box.setChecked(parameter.default)
        box.setToolTip(tip)
        return box
    if isinstance(parameter.default, int):
        box = _int(int(parameter.low if parameter.low is not None else -SPIN_MAX),
                   int(min(parameter.high if parameter.high is not None else SPIN_MAX, SPIN_MAX)),
                   int(parameter.step), parameter.default, tip)
        if parameter.odd:
            box.editingFinished.connect(lambda: box.setValue(box.value() | 1))
        return box
    low = parameter.low if parameter.low is not None else -1e30
    if parameter.above_low:
        low += 10.0 ** -parameter.decimals
    return _real(low, parameter.high if parameter.high is not None else 1e30, parameter.decimals, parameter.step,
                 parameter.default, tip)


def _value(widget: QWidget) -> Any:
    return widget.isChecked() if isinstance(widget, QCheckBox) else widget.value()


class SettingsForm(QGroupBox):
    """Thin widget over FillSettings plus the app's own choices (scope, dilation, threads).

    Every registered method's parameters shown in the app get a row; only the chosen method's rows (and the
    model's, when it needs a slice model) are shown. A parameter's widget is also the attribute of its name
    (`form.iterations`).
    """

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
        for name, method in METHODS.items():
            self.method.addItem(name, name)
            self.method.setItemData(self.method.count() - 1, method.description, Qt.ItemDataRole.ToolTipRole)
        self.method.setCurrentIndex(max(0, self.method.findData(defaults.method)))
        self.method.setToolTip("Fill method of the engine (hover an entry for what it does).")
        self.parameters: dict[str, QWidget] = {}
        for parameter in parameters().values():
            if parameter.app:
                self.parameters[parameter.name] = widget = parameter_widget(parameter)
                if parameter.name not in vars(type(self)) and parameter.name not in vars(self):
                    setattr(self, parameter.name, widget)   # never in place of the form's own methods or fields
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
        self._form = form = QFormLayout(self)
        labels = {name: "" if isinstance(widget, QCheckBox) else parameters()[name].label
                  for name, widget in self.parameters.items()}
        rows = [("Model", self.model), ("Method", self.method)]
        rows += [(labels[name], widget) for name, widget in self.parameters.items()]
        rows += [("Dilate mask", self.dilate), ("Scope", self.scope), ("Threads", self.threads)]
        for label, widget in rows:
            form.addRow(label, widget)
        self.fields = tuple(widget for _, widget in rows)
        self.method.currentIndexChanged.connect(lambda _index: self._show_method_fields())
        self._show_method_fields()

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

    # settings ---------------------------------------------------------------------------------------
    def chosen(self) -> FillMethod:
        """The chosen fill method."""
        return METHODS[self.method.currentData()]

    def fill_settings(self, preview_every: int) -> FillSettings:
        """The form's settings: every field's value (the sidecar records those the method reads), the chosen
        method's own in `extra`."""
        declared = parameters()
        values = {name: _value(widget) | 1 if declared[name].odd else _value(widget)
                  for name, widget in self.parameters.items()}
        extra = tuple((p.name, values[p.name]) for p in self.chosen().parameters
                      if p.name in values and not hasattr(FillSettings, p.name))
        fields = {name: value for name, value in values.items() if hasattr(FillSettings, name)}
        return FillSettings(method=self.method.currentData(), preview_every=preview_every, extra=extra, **fields)

    def set_enabled(self, enabled: bool) -> None:
        for widget in self.fields:
            widget.setEnabled(enabled)

    def uses_latent_search(self) -> bool:
        """Whether the chosen method searches a slice model's latent space (it needs a slice model)."""
        return self.chosen().needs_model

    def _show_method_fields(self) -> None:
        """Show the model's row only for a method that needs a slice model, and only the chosen method's parameters."""
        method = self.chosen()
        own = {p.name for p in method.parameters}
        self._form.setRowVisible(self.model, method.needs_model)
        for name, widget in self.parameters.items():
            self._form.setRowVisible(widget, name in own)
