"""The widget's "Fit to this scan" tab: weights fitted to the input layer from its own sharp plane.

The fit and the upscaling with its weights run in a ``thread_worker`` on
:func:`napari_volumenet._fit_pipeline.fit_steps` (live steps and self-validation PSNR; Cancel drops it at
once, its worker ending at the next optimisation step). The fitted result is added as its own layer
("SR fitted <input>") beside those of the Model tab; "Save fitted weights…" writes the weights, which every other
entry point accepts.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from .._fit_pipeline import FitRequest, FitResult, fit_steps
from .._geometry import LayerGeometry
from .._names import in_widget_terms
from .._pipeline import Step
from .._result_layers import RunContext
from ..errors import InputError, VolumeNetError
from ..fit import FitUpdate
from ..inference import RunOptions
from .results import save_dialog
from .worker import Failure, no_result, start_worker

PROGRESS_UNITS = 1000


class FitTab(QWidget):
    """Fit weights to the input layer of ``owner`` (the main widget: its input, device and result layers)."""

    def __init__(self, owner: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.owner = owner
        self.worker: Any = None
        self.stopping: list[Any] = []
        """Cancelled workers still finishing their current step (their results are dropped)."""
        self._run_id = 0
        self.result: FitResult | None = None
        self.max_steps: int | None = None
        """A cap on the optimisation steps (tests); ``None``: the minutes alone."""
        self._folder = tempfile.TemporaryDirectory(prefix="volumenet-fit-")
        self._build()

    def _build(self) -> None:
        form = QFormLayout(self)
        note = QLabel("For a thick-slice scan: its sharp plane, made as thick as its slices, teaches a network its "
                      "slice axis. Starts from the bundled through-plane weights where they exist.")
        note.setWordWrap(True)
        form.addRow(note)
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.05, 120.0)
        self.minutes_spin.setValue(5.0)
        self.minutes_spin.setSuffix(" min")
        form.addRow("Fit for", self.minutes_spin)
        self.thickness_spin = QDoubleSpinBox()
        self.thickness_spin.setRange(0.0, 50.0)
        self.thickness_spin.setSingleStep(0.5)
        self.thickness_spin.setSpecialValueText("from the scan")
        self.thickness_spin.setSuffix(" mm")
        self.thickness_spin.setToolTip("Slice thickness where it is less than the spacing (a gap); default: the "
                                       "series' SliceThickness, else the spacing")
        form.addRow("Slice thickness", self.thickness_spin)
        row = QHBoxLayout()
        self.fit_button = QPushButton("Fit to this scan")
        self.fit_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button = QPushButton("Save fitted weights…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(lambda: save_dialog(self, "Save fitted weights", "Weights (*.pt)",
                                                             self.save_weights))
        for button in (self.fit_button, self.cancel_button, self.save_button):
            row.addWidget(button)
        form.addRow(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_UNITS)
        form.addRow(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form.addRow(self.status)

    def start(self) -> None:
        """Fit to the input layer and upscale it with the result (in a worker thread)."""
        if self.owner.busy():
            return
        try:
            steps, context = self._prepare()
        except VolumeNetError as error:
            message = in_widget_terms(str(error), self.owner._input_ornt())
            self.status.setText(message)
            show_error(message)
            return
        self._run_id += 1
        self.status.setText("Preparing the fit (slice profile, pairs, starting weights)…")
        run = self._run_id
        self.worker = start_worker(steps, yielded=partial(self._on_update, run),
                                   returned=partial(self._on_returned, run, context), aborted=lambda: None,
                                   finished=partial(self._on_finished, run))
        self._set_running(True)

    def _prepare(self) -> tuple[Any, RunContext]:
        owner = self.owner
        source = owner._layer(owner.input_combo.currentText())
        if source is None:
            raise InputError("Input layer: choose the thick-slice scan to fit to.")
        geometry = LayerGeometry.from_layer(source.metadata, source.scale, source.translate, source.ndim)
        thickness = self.thickness_spin.value()
        request = FitRequest(self.minutes_spin.value(), thickness or None, modality=owner.model_tab.modality() or "mri",
                             options=RunOptions(device=owner.device_combo.currentText(),
                                                precision=owner.precision_combo.currentText()),
                             max_steps=self.max_steps)
        steps = fit_steps(source.data, geometry, source.name, request, Path(self._folder.name))
        window = tuple(float(v) for v in source.contrast_limits)
        return steps, RunContext(source.name, geometry, "upscale", None, False, window, "fitted to this scan")

    def cancel(self) -> None:
        """Stop now: the worker ends at its next optimisation step (or tile), its result is dropped; nothing
        is added."""
        if self.worker is None:
            return
        self.worker.quit()
        self.stopping.append(self.worker)
        self.worker = None
        self._run_id += 1  # whatever the cancelled worker still sends is ignored
        self.progress.setValue(0)
        self.status.setText("Fit cancelled; nothing was added.")
        show_info("Fit cancelled; nothing was added.")
        self._set_running(False)

    def save_weights(self, path: str | Path) -> Path:
        """Write the latest fit's weights to ``path`` (a ``.pt`` file, atomically)."""
        if self.result is None:
            raise ValueError("Nothing fitted yet.")
        try:
            return self.result.fitted.save(path)
        except VolumeNetError as error:
            raise ValueError(str(error)) from None

    def _set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setValue(0)
        self.owner.check_inputs()  # one worker at a time: Run and Fit wait for each other

    def _current(self, run: int) -> bool:
        """Whether ``run`` is the fit in progress and the widget still exists (else its signals are dropped)."""
        return self.owner.alive[0] and run == self._run_id

    def _on_update(self, run: int, update: FitUpdate | Step) -> None:
        if not self._current(run):
            return
        if isinstance(update, FitUpdate):
            self.progress.setValue(round(PROGRESS_UNITS * update.fraction))
            self.status.setText(f"Fitting: step {update.step:,} · self-validation {update.psnr:.2f} dB "
                                f"(cubic {update.cubic_psnr:.2f}, start {update.start_psnr:.2f})")
        elif update.stage == "tiles":
            self.status.setText(f"Upscaling with the fitted weights: {100 * update.done // max(update.total, 1)} %")

    def _on_returned(self, run: int, context: RunContext, value: FitResult | Failure | None) -> None:
        if not self._current(run):
            return
        if isinstance(value, Failure):
            value = Failure(in_widget_terms(value.message, context.geometry.ornt))
            self.progress.setValue(0)
        if no_result(value, self.status):
            return
        self.result = value
        for _ in self.owner._show_result(context, value.run):  # all layers at once: a fit ends rarely
            pass
        self.save_button.setEnabled(True)
        self.progress.setValue(PROGRESS_UNITS)
        self.status.setText(f"Added “{value.label}”. {value.fitted.summary()}")

    def _on_finished(self, run: int) -> None:
        self.stopping = [worker for worker in self.stopping if worker.is_running]
        if not self.owner.alive[0]:
            return
        if run == self._run_id:
            self.worker = None
            self.cancel_button.setEnabled(False)
        self.owner.check_inputs()
