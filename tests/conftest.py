"""Fixtures shared by the whole test suite."""

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors: one intra-op thread is much faster (and immune to a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_dicom_series(folder, values, *, row=(1.0, 0.0, 0.0), col=(0.0, 1.0, 0.0), pixel=(0.9, 0.8),
                       spacing=3.0, thickness=2.5, origin=(-10.0, -20.0, 30.0), order=None, modality="MR",
                       slope=1.0, intercept=0.0, series_uid=None, number=3, description="t1 synth",
                       position="HFS", tilt=0.0, frames=None, study_uid="1.2.826.0.1.3680043.8.498.1"):
    """Write ``values`` (``(slices, rows, columns)``, stored integers) as a DICOM series of one file per slice.

    Slice ``k`` lies at ``origin + k·spacing·normal`` (LPS, normal = row × col; ``tilt`` shifts it by
    ``k·tilt`` mm along the column direction); ``order`` is the order of the files' names (default: slice order).
    Returns the folder.
    """
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    values = np.asarray(values)
    row, col = np.asarray(row, float), np.asarray(col, float)
    normal = np.cross(row, col)
    series_uid = series_uid or generate_uid()
    sop_class = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"
    for name_index, k in enumerate(order if order is not None else range(len(values))):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = study_uid + ".9"
        ds.PatientName, ds.PatientID, ds.Modality, ds.PatientPosition = "Synth^Test", "SYN001", modality, position
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = number, name_index + 1, description
        ds.ImageOrientationPatient = [float(v) for v in (*row, *col)]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * spacing * normal + k * tilt * col]
        ds.PixelSpacing = [float(pixel[0]), float(pixel[1])]
        ds.SliceThickness = thickness
        ds.Rows, ds.Columns = values.shape[1], values.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        signed = values.min() < 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, int(signed)
        if modality == "CT" or slope != 1.0 or intercept != 0.0:
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if frames is not None:
            ds.NumberOfFrames = frames
        ds.PixelData = values[k].astype(np.int16 if signed else np.uint16).tobytes()
        ds.save_as(folder / f"IM{name_index:04d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture
def dicom_series():
    """:func:`write_dicom_series`, for tests that synthesise DICOM series (needs pydicom)."""
    pytest.importorskip("pydicom")
    return write_dicom_series
