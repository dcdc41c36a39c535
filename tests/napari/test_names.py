"""Short names of a run's layers, rows and crops, and the widget's words for library messages (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_volumenet._comparison import block_candidates
from napari_volumenet._geometry import LayerGeometry
from napari_volumenet._names import (
    CAPTION_PT, MAX_NAME, MIN_CAPTION_PT, PX_PER_CHARACTER_PT, SEPARATOR, caption_size, difference_names, elide_middle, in_widget_terms, numbered, short_labels, simulated_lr_name,
)
from napari_volumenet._pipeline import ModelSpec, RunRequest, run_steps, run_sync
from napari_volumenet._result_layers import RunContext, result_layers
from napari_volumenet._sample_data import make_phantom
from napari_volumenet.errors import VolumeNetError
from napari_volumenet.inference import RunOptions, resolve_precision
from napari_volumenet.models import create_model, list_blocks
from napari_volumenet.ops.normalize import modality_mismatch
from napari_volumenet.slices import choose, modality_remedy
from napari_volumenet.weights import list_bundled, save_weights

BLOCKS = ("conv", "xception", "mobilenetv2", "cpd", "lwv1", "lwv2", "queue")


def test_elide_middle_keeps_both_ends_within_the_limit():
    assert elide_middle("tricubic") == "tricubic"
    long = "SR volumenet-d9c32-mri-slices-x4"
    short = elide_middle(long)
    assert len(short) == MAX_NAME and "…" in short
    assert short.startswith("SR volum") and short.endswith("slices-x4")
    assert len(elide_middle(long, 10)) == 10


def test_grid_captions_shrink_to_their_cell_within_readable_sizes():
    assert caption_size("tricubic", 142) == CAPTION_PT  # fits at napari's size: kept
    size = caption_size("MNI152 GT (1 mm)", 142)  # a seven-block grid's cell at 1366×768
    assert MIN_CAPTION_PT <= size < CAPTION_PT and size * PX_PER_CHARACTER_PT * 16 <= 142 and size * 2 == int(size * 2)
    assert caption_size("x" * 80, 142) == MIN_CAPTION_PT  # never unreadably small
    # the names a newcomer's comparison puts in the grid fit a quarter of the canvas at 1366×768
    names = ["MNI152 GT (1 mm)", "MNI152 LR (2 mm)", *(f"|{b} − GT|" for b in BLOCKS)]
    assert all(caption_size(n, 142) * PX_PER_CHARACTER_PT * len(n) <= 142 for n in names)


def test_the_seven_bundled_blocks_are_named_by_their_block():
    rows = block_candidates(list_bundled(), list_blocks())[:7]
    labels = short_labels([row.name.split(SEPARATOR) for row in rows], taken=("tricubic",))
    assert labels == list(BLOCKS)  # what differs first: not "ParallelNet D9C32", which they share
    names = ["tricubic", *labels]
    differences = difference_names(names)
    assert differences[2] == "|xception − GT|"
    every = [*names, *differences]
    assert len(set(every)) == len(every) and max(map(len, every)) <= MAX_NAME


def test_short_labels_take_parts_until_distinct_then_number():
    assert short_labels([["queue", "VolumeNet D9C32"], ["queue (w)", "VolumeNet D9C32"]]) == ["queue", "queue (w)"]
    assert short_labels([["a", "x"], ["a", "y"]]) == ["a · x", "a · y"]
    assert short_labels([["a", "x"], ["a", "x"]]) == ["a · x", "a · x 2"]
    assert short_labels([["tricubic"]], taken=("tricubic",)) == ["tricubic 2"]
    long = ["SR volumenet-d9c32-mri-slices-x4", "SR volumenet-d9c32-mri-slices-x2", "SR volumenet-d9c32-mri-sl…-x4"]
    labels = short_labels([[name] for name in long])
    assert len(set(labels)) == 3 and max(map(len, labels)) <= MAX_NAME
    assert numbered(["a", "a", "a"], taken=("a",)) == ["a 2", "a 3", "a 4"]


def test_difference_names_of_similar_long_labels_fit_and_differ():
    labels = ["SR volumenet-d9c32-mri-slices-x4", "SR volumenet-d9c32-ct-slices-x4"]
    names = difference_names(labels)
    assert len(set(names)) == 2 and all(len(n) <= MAX_NAME and n.startswith("|") and n.endswith(" − GT|")
                                        for n in names)


def test_simulated_lr_names_speak_of_napari_axes():
    assert simulated_lr_name((2, 2, 2)) == "LR ×2 (simulated)"
    assert simulated_lr_name((1, 4, 1)) == "LR ×4 axis 1 (sim.)"
    assert len(simulated_lr_name((1, 2, 4))) <= MAX_NAME


def test_a_seven_block_run_has_short_distinct_layer_names(tmp_path):
    """The real pipeline and layer builder with one (tiny, random) network per block, as Compare blocks labels them."""
    specs = []
    for block in BLOCKS:
        torch.manual_seed(0)
        model = "volumenet" if block == "queue" else "parallelnet"
        weights = save_weights(tmp_path / f"compare-d1c4-{block}-mri-x2.pt",
                               create_model(model, depth=1, channels=4, block=block), modality="mri")
        specs.append(([block, f"{model} D1C4"], weights))
    labels = short_labels([parts for parts, _ in specs], taken=("tricubic",))
    hr = make_phantom((16, 16, 16))
    request = RunRequest("simulate", modality="mri", options=RunOptions(device="cpu", precision="fp32", tile=0))
    result = run_sync(run_steps(hr, [ModelSpec(label, w) for label, (_, w) in zip(labels, specs)], request))
    geometry = LayerGeometry.from_affine(np.eye(4))
    layers = result_layers(RunContext("a long input layer name, longer than any", geometry, "simulate", None, False,
                                      (0.0, 1.0)), result, differences_visible=False)
    names = [layers.lr_name, *(new.name for new in layers.outputs), *(new.name for new in layers.differences)]
    assert len(names) == 1 + 8 + 8 and len(set(names)) == len(names)
    assert max(map(len, names)) <= MAX_NAME
    assert "|xception − GT|" in names and "xception" in names
    sidecar = layers.outputs[2].kwargs["metadata"]["volumenet"]["sidecar"]
    assert sidecar["full_name"].startswith("xception: ParallelNet D1C4 with xception blocks, weights compare-d1c4")


def _library_messages() -> list[str]:
    """What the library says where the command line would be the remedy (the messages a widget run can meet)."""
    messages = [choose((1.0, 1.0, 1.0), scale=(1, 1, 4)).reason]  # "--scale: ×4 along array axis 2"
    for call in (lambda: resolve_precision("fp16", torch.device("cpu")),
                 lambda: choose((1.0, 4.0, 4.0)), lambda: choose((1.0, 1.0, 9.0))):
        with pytest.raises(VolumeNetError) as error:
            call()
        messages.append(str(error.value))
    messages.append(modality_remedy("mri", (1, 1, 4)) or "")  # no CT through-plane weights
    messages.append(modality_mismatch(np.full((8, 8, 8), -1000.0, np.float32), "mri") or "")
    messages.append(modality_mismatch(np.ones((8, 8, 8), np.float32), "ct") or "")
    messages.append("out of memory on cpu with (64, 64, 64) voxel windows; pass a smaller --tile")  # inference's words
    messages.append("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    return messages


def test_library_messages_in_the_widget_terms():
    ornt = np.array([[2, 1], [1, 1], [0, 1]])  # stored axis 2 is napari axis 0
    messages = _library_messages()
    assert all("--" in m for m in messages)  # each of them names a command-line flag
    for message in messages:
        said = in_widget_terms(message, ornt)
        assert "--" not in said and "array axis" not in said, said
    assert in_widget_terms(messages[0], ornt) == "×4 along napari axis 0"
    assert in_widget_terms(messages[1]).endswith("choose bf16 or fp32 in Device ▸ Precision")
    assert in_widget_terms(messages[-2]).endswith("choose a smaller Device ▸ Tile")
    assert in_widget_terms(messages[-1]).endswith("choose cpu in Device ▸ Device")
    assert "Model ▸ Weights" in in_widget_terms(messages[2]) and "Model ▸ Weights" in in_widget_terms(messages[3])
