"""TFLite custom operators (the face landmark attention model's Landmarks2TransformMatrix,
TransformTensorBilinear and TransformLandmarks) converted to ONNX, against independent references.

LiteRT's Python interpreter does not register these MediaPipe operators, so the references are a
plain numpy port of their C++ kernels (tests/tflite_reference.py) and, for the whole model, LiteRT
running each stretch of builtin operators between them (the graph cut at the custom operators) with
the numpy kernels in the cuts. Then the converted model against MediaPipe 0.10.14's own refined
face meshes (478 points) on the shared photos.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import tflite
from flatbuffers import flexbuffers

from posezoo.errors import ConvertError
from posezoo.supply.convert import convert_bytes
from tflite_build import Op, T, tflite_model
from tflite_reference import KERNELS, graph_ops, run_split, submodel

ATTENTION = "mediapipe-assets/face_landmark_with_attention.tflite"
CROP = 192
IRIS = {"output_left_iris": list(range(468, 473)), "output_right_iris": list(range(473, 478))}  # MediaPipe's refinement


@pytest.fixture(scope="module")
def attention(shared_models: Path) -> dict:
    """The model's bytes, its converted ONNX session, and its operator list."""
    data = (shared_models / ATTENTION).read_bytes()
    session = ort.InferenceSession(convert_bytes(data, model_name="face_landmark_with_attention.tflite"),
                                   providers=["CPUExecutionProvider"])
    return {"data": data, "session": session, "ops": graph_ops(data)}


@pytest.fixture(scope="module")
def faces(testdata: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, RGB image, 478 x 3 reference landmarks in pixels) for every refined face MediaPipe found."""
    reference = json.loads((testdata / "mediapipe_wholebody_reference.json").read_text())
    assert reference["mediapipe"] == "0.10.14"
    found = []
    for name, entry in reference["images"].items():
        path = testdata / "images" / name
        path = path if path.is_file() else testdata / "images-wholebody" / name
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        meshes = [("face_mesh", face) for face in entry["face_mesh_refine1"]]
        if entry["holistic_refine1"]["face"] is not None:
            meshes.append(("holistic", entry["holistic_refine1"]["face"]))
        for kind, mesh in meshes:
            found.append((f"{name}:{kind}", image, np.asarray(mesh, np.float64)))
    assert len(found) >= 8
    return found


def face_crop(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 192x192 [0, 1] crop face mesh takes around ``landmarks`` (box centre, long side x 1.5, turned
    so that the eye corners 33 -> 263 lie level) and the 2x3 affine map from crop pixels to image pixels."""
    xy = landmarks[:, :2]
    centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
    size = 1.5 * (xy.max(axis=0) - xy.min(axis=0)).max()
    dx, dy = xy[263] - xy[33]
    angle = math.atan2(dy, dx)
    ex, ey = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    scale = size / CROP
    to_image = np.column_stack([ex * scale, ey * scale, centre - (ex + ey) * size / 2])  # crop (u, v) -> image
    sample = to_image.copy()
    sample[:, 2] += (ex + ey) * scale / 2 - 0.5  # cv2 samples pixel centres at integers
    crop = cv2.warpAffine(image, sample, (CROP, CROP), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT)
    return (crop.astype(np.float32) / 255.0)[None], to_image


def refined_mesh(outputs: dict[str, np.ndarray], ops: list[dict], tensor_names: list[str]) -> np.ndarray:
    """478 x 3 crop-pixel landmarks: the 468-point mesh with the lips and eyes refined and the irises
    appended, each refined group's mesh indices read from the Landmarks2TransformMatrix that placed it."""
    mesh = outputs["output_mesh_identity"].reshape(468, 3).astype(np.float64)
    out = np.zeros((478, 3))
    out[:468] = mesh
    producer = {t: op for op in ops for t in op["outputs"]}
    by_name = {name: i for i, name in enumerate(tensor_names)}
    for name in ("output_lips", "output_left_eye", "output_right_eye"):
        op = producer[by_name[name]]
        while not op["code"].startswith("CUSTOM:TransformLandmarks"):
            op = producer[op["inputs"][0]]
        matrix = producer[op["inputs"][1]]
        while not matrix["code"].startswith("CUSTOM:Landmarks2TransformMatrix"):
            matrix = producer[matrix["inputs"][0]]
        indices = [int(i) for i in matrix["options"]["subset_idxs"]]
        out[indices, :2] = outputs[name].reshape(-1, 2)
    for name, indices in IRIS.items():
        out[indices, :2] = outputs[name].reshape(-1, 2)
        out[indices, 2] = mesh[:, 2].mean()  # z does not enter the comparison below
    return out


def _tensor_names(data: bytes) -> list[str]:
    graph = tflite.Model.GetRootAs(data, 0).Subgraphs(0)
    return [graph.Tensors(i).Name().decode() for i in range(graph.TensorsLength())]


def _input_index(data: bytes) -> int:
    return int(tflite.Model.GetRootAs(data, 0).Subgraphs(0).Inputs(0))


def test_custom_operators_match_their_kernels(attention, faces):
    """Each custom operator of the model, converted alone, on the very tensors the model feeds it for a
    real face crop: within 1e-6 of the numpy kernels (in practice bit-identical but for a last bit or
    two in a few matrix entries, from atan2 and sin/cos)."""
    data, ops = attention["data"], attention["ops"]
    _, image, landmarks = faces[0]
    crop, _ = face_crop(image, landmarks)
    known = run_split(data, {_input_index(data): crop})
    checked = set()
    for k, op in enumerate(ops):
        if not op["code"].startswith("CUSTOM:"):
            continue
        session = ort.InferenceSession(convert_bytes(submodel(data, [k], op["inputs"], op["outputs"]), model_name="op.tflite"),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, {i.name: known[t] for i, t in zip(session.get_inputs(), op["inputs"])})[0]
        want = known[op["outputs"][0]]
        assert got.shape == want.shape, op["code"]
        assert np.abs(got - want).max() <= 1e-6 * max(1.0, float(np.abs(want).max())), (k, op["code"])
        checked.add(op["code"])
    assert checked == {"CUSTOM:Landmarks2TransformMatrix", "CUSTOM:TransformTensorBilinear", "CUSTOM:TransformLandmarks"}


def test_attention_model_matches_litert_with_kernels(attention, faces):
    """The whole converted model against LiteRT + the numpy kernels (the graph cut at the custom
    operators), on real face crops: every output within 1e-3 + 1e-5 * max|reference| (landmarks are
    crop pixels, up to ~190)."""
    data, session = attention["data"], attention["session"]
    names = _tensor_names(data)
    graph = tflite.Model.GetRootAs(data, 0).Subgraphs(0)
    for label, image, landmarks in faces[:3]:
        crop, _ = face_crop(image, landmarks)
        known = run_split(data, {_input_index(data): crop})
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input_1": crop})))
        for i in range(graph.OutputsLength()):
            index = int(graph.Outputs(i))
            want = known[index]
            err = float(np.abs(got[names[index]] - want).max())
            assert err <= 1e-3 + 1e-5 * float(np.abs(want).max()), (label, names[index], err)


def test_attention_model_matches_mediapipe_meshes(attention, faces):
    """The converted model on a crop around each reference face, its 478 refined points mapped back to
    the photo: within 2% (mean) and 6% (worst point; 5% for the irises, whose two sides are ~30% apart)
    of the face box diagonal of MediaPipe 0.10.14's own refined mesh. (MediaPipe cropped from its
    detector or the pose, not from its own result: the crops differ a little, so the points do. Measured:
    mean 0.5-1.3%, worst point 1.2-4.1%, on faces 45-440 px across.)"""
    data, session = attention["data"], attention["session"]
    names, ops = _tensor_names(data), attention["ops"]
    for label, image, landmarks in faces:
        crop, to_image = face_crop(image, landmarks)
        outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input_1": crop})))
        assert outputs["conv_faceflag"].item() > 0, label  # a face (logit)
        mesh = refined_mesh(outputs, ops, names)
        xy = mesh[:, :2] @ to_image[:, :2].T + to_image[:, 2]
        diagonal = float(np.linalg.norm(landmarks[:, :2].max(axis=0) - landmarks[:, :2].min(axis=0)))
        err = np.linalg.norm(xy - landmarks[:, :2], axis=1) / diagonal
        assert err.mean() <= 0.02 and err.max() <= 0.06, (label, float(err.mean()), float(err.max()))
        assert err[468:].max() <= 0.05, (label, float(err[468:].max()))


# -- synthetic cases: each kernel alone, on inputs the model never gives it -------------------------

def _custom_model(name: str, shapes: list[tuple], out_shape: tuple, options: dict | None, version: int = 2) -> bytes:
    tensors = [T(f"in{i}", s) for i, s in enumerate(shapes)] + [T("out", out_shape)]
    custom = flexbuffers.Dumps(options) if options is not None else None
    op = Op(f"CUSTOM:{name}", list(range(len(shapes))), [len(shapes)], custom_options=custom, version=version)
    return tflite_model(tensors, [op], list(range(len(shapes))), [len(shapes)])


def _ours(data: bytes, feeds: list[np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(convert_bytes(data, model_name="custom.tflite"), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), feeds)})[0]


def _rotation(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[[c, -s, 0, shift[0]], [s, c, 0, shift[1]], [0, 0, 1, 0], [0, 0, 0, 1]]], np.float32)


@pytest.mark.parametrize("left, right, target, subset", [
    (0, 1, 0.0, [0, 1, 2, 3, 4, 5]),
    (3, 1, 0.0, [0, 2, 4, 6, 8]),  # right of left: atan2 in the other half; an odd subset (last one paired with itself)
    (5, 2, 1.2, list(range(10))),  # a target rotation
    (7, 7, 0.0, [1, 2]),  # the same landmark twice: atan2(0, 0) = 0
])
def test_landmarks_to_transform_matrix(left, right, target, subset):
    options = {"left_rotation_idx": left, "right_rotation_idx": right, "target_rotation_radians": target,
               "subset_idxs": subset, "output_width": 16, "output_height": 12, "scale_x": 1.5, "scale_y": 2.0}
    landmarks = (np.random.default_rng(left).uniform(0, 190, (1, 10, 3))).astype(np.float32)
    want = KERNELS["Landmarks2TransformMatrix"]([landmarks], options)
    got = _ours(_custom_model("Landmarks2TransformMatrix", [(1, 10, 3)], (1, 4, 4), options), [landmarks])
    assert np.abs(got - want).max() <= 2e-6 * max(1.0, float(np.abs(want).max()))


@pytest.mark.parametrize("matrix", [
    _rotation(0.3, 0.8, (2.0, 1.0)),
    _rotation(-2.5, 1.7, (30.0, 5.0)),  # partly outside the input: zeros there
    _rotation(0.0, 1.0, (0.0, 0.0)),  # the identity: whole pixels, the bottom/right edge sampled exactly
    _rotation(1.0, 0.5, (-40.0, -40.0)),  # entirely outside
])
def test_transform_tensor_bilinear(matrix):
    data = np.random.default_rng(3).standard_normal((1, 24, 20, 5)).astype(np.float32)
    options = {"output_height": 16, "output_width": 18}
    want = KERNELS["TransformTensorBilinear"]([data, matrix], options)
    got = _ours(_custom_model("TransformTensorBilinear", [(1, 24, 20, 5), (1, 4, 4)], (1, 16, 18, 5), options), [data, matrix])
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-6


@pytest.mark.parametrize("dims", [2, 3])
def test_transform_landmarks(dims):
    points = np.random.default_rng(dims).uniform(-5, 25, (1, 9, dims)).astype(np.float32)
    matrix = _rotation(0.7, 3.0, (11.0, -4.0))
    want = KERNELS["TransformLandmarks"]([points, matrix], {})
    got = _ours(_custom_model("TransformLandmarks", [(1, 9, dims), (1, 4, 4)], (1, 9, dims), None), [points, matrix])
    np.testing.assert_array_equal(got, want)


def _assert_one_line(exc: ConvertError, *parts: str) -> None:
    assert "\n" not in str(exc)
    for part in parts:
        assert part in str(exc), str(exc)


def test_unknown_custom_operator_is_named():
    data = _custom_model("Flux", [(1, 4, 3)], (1, 4, 3), {"k": 1})
    with pytest.raises(ConvertError) as info:
        convert_bytes(data, model_name="flux.tflite")
    _assert_one_line(info.value, "cannot convert flux.tflite", "operator CUSTOM (Flux) is not supported",
                     "CUSTOM (TransformTensorBilinear)")


def test_custom_operator_version_and_options_are_checked():
    data = _custom_model("TransformLandmarks", [(1, 9, 2), (1, 4, 4)], (1, 9, 2), None, version=1)
    with pytest.raises(ConvertError) as info:
        convert_bytes(data, model_name="v1.tflite")
    _assert_one_line(info.value, "v1.tflite", "CUSTOM (TransformLandmarks) version 1 is not supported")
    data = _custom_model("TransformTensorBilinear", [(1, 8, 8, 2), (1, 4, 4)], (1, 4, 4, 2), {"output_height": 4})
    with pytest.raises(ConvertError) as info:
        convert_bytes(data, model_name="half.tflite")
    _assert_one_line(info.value, "half.tflite", "lacks the option(s) output_width")
    data = _custom_model("TransformTensorBilinear", [(1, 8, 8, 2), (1, 4, 4)], (1, 4, 4, 2), None)
    with pytest.raises(ConvertError) as info:  # no options at all
        convert_bytes(data, model_name="none.tflite")
    _assert_one_line(info.value, "none.tflite", "lacks the option(s) output_height, output_width")


@pytest.mark.parametrize("raw", [b"\x07\x01\x02", flexbuffers.Dumps([1, 2, 3])], ids=["garbage", "not-a-map"])
def test_unreadable_custom_options_are_one_line(raw):
    tensors = [T("x", (1, 8, 8, 2)), T("m", (1, 4, 4)), T("y", (1, 4, 4, 2))]
    data = tflite_model(tensors, [Op("CUSTOM:TransformTensorBilinear", [0, 1], [2], custom_options=raw, version=2)], [0, 1], [2])
    with pytest.raises(ConvertError) as info:
        convert_bytes(data, model_name="bad.tflite")
    _assert_one_line(info.value, "bad.tflite", "CUSTOM (TransformTensorBilinear) has")
