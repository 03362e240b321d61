"""Exact rewrites of the converted graph for onnxruntime's CPU provider.

onnxruntime runs convolutions in a blocked channel layout (NCHWc: 16 channels a block with AVX-512, 8
with AVX2). Work that leaves that layout costs a reorder of the whole tensor in and out, and the
reorders, DepthToSpace and bilinear Resize are single-threaded. These rewrites keep MediaPipe's
graphs inside fast kernels. Each computes the same function (results agree to float rounding):

``fold_depth_to_space``
    DepthToSpace(block B) -> depthwise Conv (stride B, no activation) -> 1x1 Convs, as in the
    BlazePose detector's heads, becomes a stride-1 depthwise Conv on the B*B*C channels before the
    DepthToSpace and 1x1 Convs whose weights are repeated over the B*B phases (they sum them).
``commute_resize``
    a bilinear upsample whose only consumer is a 1x1 Conv with no more outputs than inputs runs after
    that Conv instead (both are linear per pixel and bilinear weights sum to one, so the bias commutes
    too): the Conv works on the small tensor, the resize on fewer channels. An activation that followed
    the Conv follows the resize, fused into an identity depthwise Conv.
``widen_narrow_channels`` (depends on the target: :mod:`posezoo.supply.convert.target`)
    a connected region of tensors with fewer channels than one block of the target (the pose
    landmark models' 8-channel segmentation head on AVX-512, whose blocks are 16 wide) gets zero
    channels up to one block, so it stays in NCHWc instead of being reordered around every Conv
    (onnxruntime keeps a depthwise Conv with fewer channels than a block out of NCHWc); so does a
    region with a MaxPool whose channels are not whole blocks (24 channels on AVX-512: onnxruntime
    pools only whole blocks in NCHWc, while its Convs pad to whole blocks anyway, so the widening
    costs nothing). The producing Convs get zero output rows, the consuming Convs zero input columns.
    Through depthwise Convs, Add, Relu, Clip, MaxPool and Resize the added channels stay finite (zero,
    for the Relu6 clips these models use), and the consuming Convs ignore them. With 8-channel blocks
    (AVX2) these regions already are whole blocks and stay as they are; padding the 8-channel head to
    16 would double its work for nothing. Without a blocked layout nothing is padded.
``split_channel_pads`` (NCHWc targets whose block divides the channel counts)
    a zero channel pad added to a dense Conv's output, ``Add(Conv(h), Pad(x))`` as in BlazeBlocks'
    skip connections (the converter writes the pad as a 1x1 Conv with 0/1 weights), becomes
    ``Concat(Conv_a(h), Conv_b(h) + x, Conv_c(h))``: the Conv's output rows split where ``x`` lands,
    ``x`` added to its own rows only. It saves the embedding Conv's C_in x C_out multiply-adds per
    pixel for a copy, which matters more where vectors are narrower (AVX2). A Relu that followed moves
    into the pieces, where onnxruntime fuses it. onnxruntime concatenates in NCHWc only whole blocks.

:func:`optimize` applies them to a finished ModelProto for a target, deterministically. The first two
do not depend on the block width; ``commute_resize`` adds its identity depthwise Conv (a Clip fused
there) only for NCHWc targets.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from posezoo.supply.convert.builder import unique_name
from posezoo.supply.convert.target import Target, detect_target

_CHANNELWISE = ("Add", "Clip", "MaxPool", "Relu", "Resize")


def optimize(model: onnx.ModelProto, target: Target | None = None) -> onnx.ModelProto:
    """Apply the rewrites for ``target`` (default: this machine) in place, record the target in the
    model's metadata_props (``posezoo.target``, ``posezoo.nchwc_block``) and return ``model``."""
    target = target or detect_target()
    graph = _Graph(model)
    fold_depth_to_space(graph)
    commute_resize(graph, target.nchwc)
    if target.nchwc:
        split_channel_pads(graph, target.block)
        widen_narrow_channels(graph, target.block)
    graph.write_back()
    props = {p.key: p.value for p in model.metadata_props}
    props.update({"posezoo.target": target.name, "posezoo.nchwc_block": str(target.block)})
    helper.set_model_props(model, props)  # what the layout was made for
    return model


class _Graph:
    """Nodes as a Python list, initializers as numpy arrays, and producer/consumer lookups."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in model.graph.node]
        self.arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.outputs = {v.name for v in model.graph.output}
        inferred = onnx.shape_inference.infer_shapes(model).graph
        self.shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
                       for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output)}
        self._taken = {o for n in self.nodes for o in n.output} | set(self.arrays) | {v.name for v in model.graph.input}

    # -- lookups ---------------------------------------------------------------------------------

    def producers(self) -> dict[str, onnx.NodeProto]:
        return {o: n for n in self.nodes for o in n.output}

    def consumers(self) -> dict[str, list[onnx.NodeProto]]:
        found: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for i in n.input:
                found.setdefault(i, []).append(n)
        return found

    def weight(self, node: onnx.NodeProto, k: int) -> np.ndarray | None:
        return self.arrays.get(node.input[k]) if len(node.input) > k and node.input[k] else None

    @staticmethod
    def attr(node: onnx.NodeProto, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    @staticmethod
    def set_attr(node: onnx.NodeProto, name: str, value) -> None:
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute(name, value)])

    # -- kinds of Conv ---------------------------------------------------------------------------

    def is_conv(self, node: onnx.NodeProto | None) -> bool:
        return node is not None and node.op_type == "Conv" and self.weight(node, 1) is not None

    def is_depthwise(self, node: onnx.NodeProto | None) -> bool:
        """Depthwise with channel multiplier 1: output channel c reads input channel c only."""
        if not self.is_conv(node):
            return False
        w = self.weight(node, 1)
        return w.shape[1] == 1 and self.attr(node, "group", 1) == w.shape[0]

    def is_dense(self, node: onnx.NodeProto | None) -> bool:
        return self.is_conv(node) and self.attr(node, "group", 1) == 1

    def is_pointwise(self, node: onnx.NodeProto | None) -> bool:
        """A dense 1x1 Conv, stride 1, no padding."""
        return (self.is_dense(node) and self.weight(node, 1).shape[2:] == (1, 1)
                and list(self.attr(node, "strides", [1, 1])) == [1, 1] and not any(self.attr(node, "pads", [0] * 4)))

    def bias(self, node: onnx.NodeProto) -> np.ndarray:
        b = self.weight(node, 2)
        return b if b is not None else np.zeros(self.weight(node, 1).shape[0], np.float32)

    # -- edits -----------------------------------------------------------------------------------

    def fresh_name(self, base: str) -> str:
        return unique_name(base, self._taken)

    def constant(self, array: np.ndarray, base: str) -> str:
        name = self.fresh_name(base)
        self.arrays[name] = np.ascontiguousarray(array)
        return name

    def set_weights(self, node: onnx.NodeProto, weights: np.ndarray, bias: np.ndarray | None) -> None:
        node.input[1] = self.constant(weights.astype(np.float32), (node.name or node.output[0]) + "_w")
        del node.input[2:]
        if bias is not None:
            node.input.append(self.constant(bias.astype(np.float32), (node.name or node.output[0]) + "_b"))

    def write_back(self) -> None:
        """Store the nodes (the rewrites keep them in topological order) and the initializers still used."""
        known = {v.name for v in self.model.graph.input} | set(self.arrays) | {""}
        used: list[str] = []
        for n in self.nodes:
            if not all(i in known for i in n.input):
                raise ValueError(f"graph rewrite broke the node order at {n.name}")
            known.update(n.output)
            used += [i for i in dict.fromkeys(n.input) if i in self.arrays and i not in used]  # a node may read one twice
        graph = self.model.graph
        del graph.node[:]
        graph.node.extend(self.nodes)
        del graph.initializer[:]
        graph.initializer.extend(numpy_helper.from_array(self.arrays[name], name) for name in used)


# -- DepthToSpace -> depthwise stride-B Conv -> 1x1 Convs -------------------------------------------

def fold_depth_to_space(g: _Graph) -> None:
    consumers = g.consumers()
    for d2s in [n for n in g.nodes if n.op_type == "DepthToSpace"]:
        block = g.attr(d2s, "blocksize")
        users = consumers.get(d2s.output[0], [])
        if (g.attr(d2s, "mode", b"DCR") != b"DCR" or not users or d2s.output[0] in g.outputs
                or not all(_foldable_head(g, u, block, consumers) for u in users)):
            continue
        for u in users:
            _fold_head(g, u, d2s.input[0], block, consumers[u.output[0]])
        g.nodes.remove(d2s)


def _phases(kernel: int, pad_before: int, block: int) -> list[tuple[int, int]]:
    """For each kernel tap: (offset in pre-DepthToSpace pixels, phase within the block)."""
    return [divmod(k - pad_before, block) for k in range(kernel)]


def _foldable_head(g: _Graph, conv: onnx.NodeProto, block: int, consumers) -> bool:
    if not g.is_depthwise(conv) or list(g.attr(conv, "strides", [1, 1])) != [block, block]:
        return False
    if list(g.attr(conv, "dilations", [1, 1])) != [1, 1] or conv.output[0] in g.outputs:
        return False
    kh, kw = g.weight(conv, 1).shape[2:]
    top, left, bottom, right = g.attr(conv, "pads", [0, 0, 0, 0])
    for kernel, before, after in ((kh, top, bottom), (kw, left, right)):
        offsets = [o for o, _ in _phases(kernel, before, block)]
        # output size equals the pre-DepthToSpace size, and the new pads are not negative
        if not -block <= before + after - kernel < 0 or min(offsets) > 0 or max(offsets) < 0:
            return False
    users = consumers.get(conv.output[0], [])
    return bool(users) and all(g.is_pointwise(p) and p.input[0] == conv.output[0] for p in users)


def _fold_head(g: _Graph, conv: onnx.NodeProto, source: str, block: int, pointwise: list[onnx.NodeProto]) -> None:
    w = g.weight(conv, 1)
    channels, _, kh, kw = w.shape
    dw_bias = g.bias(conv).astype(np.float64)
    top, left, _, _ = g.attr(conv, "pads", [0, 0, 0, 0])
    rows, cols = _phases(kh, top, block), _phases(kw, left, block)
    row0, col0 = min(o for o, _ in rows), min(o for o, _ in cols)
    row1, col1 = max(o for o, _ in rows), max(o for o, _ in cols)
    folded = np.zeros((block * block * channels, 1, row1 - row0 + 1, col1 - col0 + 1), np.float32)
    for i, (dy, phase_y) in enumerate(rows):
        for j, (dx, phase_x) in enumerate(cols):  # DCR: channel (phase_y * B + phase_x) * C + c
            first = (phase_y * block + phase_x) * channels
            folded[first:first + channels, 0, dy - row0, dx - col0] = w[:, 0, i, j]
    conv.input[0] = source
    g.set_weights(conv, folded, None)
    g.set_attr(conv, "group", folded.shape[0])
    g.set_attr(conv, "kernel_shape", list(folded.shape[2:]))
    g.set_attr(conv, "strides", [1, 1])
    g.set_attr(conv, "pads", [-row0, -col0, row1, col1])
    for p in pointwise:  # sums the B*B phases of each channel; the depthwise bias moves here
        w1 = g.weight(p, 1)[:, :, 0, 0]
        bias = g.bias(p).astype(np.float64) + w1.astype(np.float64) @ dw_bias
        g.set_weights(p, np.tile(w1, (1, block * block))[:, :, None, None], bias)


# -- bilinear upsample -> 1x1 Conv ------------------------------------------------------------------

def commute_resize(g: _Graph, nchwc: bool = True) -> None:
    consumers = g.consumers()
    for resize in [n for n in g.nodes if n.op_type == "Resize"]:
        users = consumers.get(resize.output[0], [])
        if (len(users) != 1 or not g.is_pointwise(users[0]) or users[0].input[0] != resize.output[0]
                or resize.output[0] in g.outputs or g.attr(resize, "mode") != b"linear"
                or len(resize.input) != 4 or resize.input[3] not in g.arrays or any(resize.input[1:3])):
            continue
        conv, sizes = users[0], g.arrays[resize.input[3]].copy()
        out_channels, in_channels = g.weight(conv, 1).shape[:2]
        before = g.shapes.get(resize.input[0], [])
        upsamples = len(before) == len(sizes) == 4 and None not in before and (sizes[2:] >= np.array(before[2:])).all()
        if out_channels > in_channels or not upsamples:  # then the Conv would not get cheaper
            continue
        sizes[1] = out_channels
        small, result = resize.output[0], conv.output[0]
        conv.input[0], conv.output[0] = resize.input[0], small
        resize.input[0], resize.output[0] = small, result
        resize.input[3] = g.constant(sizes.astype(np.int64), resize.name + "_sizes")
        g.nodes.remove(resize)
        g.nodes.insert(g.nodes.index(conv) + 1, resize)
        for act in [n for n in consumers.get(result, []) if n.op_type in ("Clip", "Relu") and nchwc]:
            identity = g.constant(np.ones((out_channels, 1, 1, 1), np.float32), resize.name + "_identity")
            hop = g.fresh_name(result + "_identity")
            g.nodes.insert(g.nodes.index(act), helper.make_node("Conv", [result, identity], [hop], name=hop,
                                                                 group=out_channels))
            act.input[0] = hop


# -- Add(Conv, zero channel pad) -> Concat of the Conv's pieces -----------------------------------

def split_channel_pads(g: _Graph, block: int) -> None:
    consumers = g.consumers()
    producers = g.producers()
    for embed in [n for n in g.nodes if g.is_pointwise(n)]:
        layout = _embedding(g, embed)
        users = consumers.get(embed.output[0], [])
        if layout is None or len(users) != 1 or users[0].op_type != "Add" or embed.output[0] in g.outputs:
            continue
        add = users[0]
        other = [i for i in add.input if i != embed.output[0]]
        conv = producers.get(other[0]) if len(other) == 1 else None
        before, channels, after = layout
        if (not g.is_dense(conv) or len(consumers.get(conv.output[0], [])) != 1 or conv.output[0] in g.outputs
                or any(n % block for n in layout) or g.weight(conv, 1).shape[0] != sum(layout)):
            continue
        _split(g, embed, add, conv, layout, consumers)


def _embedding(g: _Graph, node: onnx.NodeProto) -> tuple[int, int, int] | None:
    """(rows before, input channels, rows after) when a bias-free 1x1 Conv copies its input into
    consecutive output channels and writes zeros elsewhere; else None."""
    w = g.weight(node, 1)[:, :, 0, 0]
    if g.weight(node, 2) is not None or w.shape[0] <= w.shape[1]:
        return None
    rows = np.flatnonzero(w.any(axis=1))
    if rows.size != w.shape[1] or rows[-1] - rows[0] + 1 != rows.size:
        return None
    if not np.array_equal(w[rows], np.eye(w.shape[1], dtype=w.dtype)):
        return None
    return int(rows[0]), int(w.shape[1]), int(w.shape[0] - rows[-1] - 1)


def _split(g: _Graph, embed: onnx.NodeProto, add: onnx.NodeProto, conv: onnx.NodeProto,
           layout: tuple[int, int, int], consumers) -> None:
    before, channels, _ = layout
    w, bias, has_bias = g.weight(conv, 1), g.bias(conv), g.weight(conv, 2) is not None
    result = add.output[0]
    users = consumers.get(result, [])
    relu = users[0] if len(users) == 1 and users[0].op_type == "Relu" and result not in g.outputs else None
    position = g.nodes.index(add) - 2  # the Add comes after the Conv and the embedding, which go
    g.nodes.remove(conv)
    g.nodes.remove(embed)
    g.nodes.remove(add)
    pieces, new_nodes = [], []
    for start, stop in ((0, before), (before, before + channels), (before + channels, w.shape[0])):
        if start == stop:
            continue
        piece = onnx.NodeProto.FromString(conv.SerializeToString())
        piece.name = piece.output[0] = g.fresh_name(f"{conv.output[0]}_{start}_{stop}")
        g.set_weights(piece, w[start:stop], bias[start:stop] if has_bias else None)
        new_nodes.append(piece)
        out = piece.output[0]
        if start == before:  # the rows that receive x
            out = g.fresh_name(f"{result}_{start}_{stop}")
            new_nodes.append(helper.make_node("Add", [piece.output[0], embed.input[0]], [out], name=out))
        if relu is not None:
            activated = g.fresh_name(f"{relu.output[0]}_{start}_{stop}")
            new_nodes.append(helper.make_node("Relu", [out], [activated], name=activated))
            out = activated
        pieces.append(out)
    joined = relu.output[0] if relu is not None else result
    if relu is not None:
        g.nodes.remove(relu)
    new_nodes.append(helper.make_node("Concat", pieces, [joined], name=joined, axis=1))
    g.nodes[position:position] = new_nodes  # where the Add was: both inputs are computed by then


# -- narrow channel regions -> one full block -------------------------------------------------------

def widen_narrow_channels(g: _Graph, block: int) -> None:
    producers, consumers = g.producers(), g.consumers()
    for region in _channel_regions(g):
        channels = _region_channels(g, region, producers)
        if channels is None or channels % block == 0 or not _region_closed(g, region, consumers):
            continue
        pooled = any(producers[v].op_type == "MaxPool" for v in region)
        if channels > block and not pooled:  # onnxruntime pads such Convs to whole blocks itself
            continue
        extra = -channels % block
        widened_rows: set[int] = set()
        widened_cols: set[int] = set()
        for value in sorted(region):
            node = producers[value]
            if g.is_conv(node) and id(node) not in widened_rows:
                widened_rows.add(id(node))
                depthwise = _channelwise(g, node)
                w = g.weight(node, 1)
                rows = np.concatenate([w, np.zeros((extra,) + w.shape[1:], w.dtype)])
                has_bias = g.weight(node, 2) is not None
                g.set_weights(node, rows, np.concatenate([g.bias(node), np.zeros(extra, np.float32)]) if has_bias else None)
                if depthwise:
                    g.set_attr(node, "group", channels + extra)
            elif node.op_type == "Resize":
                sizes = g.arrays[node.input[3]].copy()
                sizes[1] = channels + extra
                node.input[3] = g.constant(sizes, node.name + "_sizes")
            for user in consumers.get(value, []):
                if not _channelwise(g, user) and id(user) not in widened_cols:  # a dense Conv (checked)
                    widened_cols.add(id(user))
                    w = g.weight(user, 1)
                    cols = np.concatenate([w, np.zeros((w.shape[0], extra) + w.shape[2:], w.dtype)], axis=1)
                    g.set_weights(user, cols, g.weight(user, 2))


def _channelwise(g: _Graph, node: onnx.NodeProto) -> bool:
    """Output channel c depends on input channel c only (and finite values stay finite)."""
    if node.op_type == "Add":
        return not any(i in g.arrays for i in node.input)
    if node.op_type == "Resize":
        return len(node.input) == 4 and node.input[3] in g.arrays and not any(node.input[1:3])
    return (node.op_type in _CHANNELWISE and len(node.output) == 1) or g.is_depthwise(node)


def _channel_regions(g: _Graph) -> list[set[str]]:
    """Values joined by channelwise nodes (which must all have the same channel count)."""
    parent: dict[str, str] = {}

    def root(v: str) -> str:
        parent.setdefault(v, v)
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for node in g.nodes:
        if _channelwise(g, node):
            for i in node.input if node.op_type == "Add" else node.input[:1]:
                parent[root(i)] = root(node.output[0])
    regions: dict[str, set[str]] = {}
    for v in sorted(parent):
        regions.setdefault(root(v), set()).add(v)
    return [regions[k] for k in sorted(regions, key=lambda k: min(regions[k]))]


def _region_channels(g: _Graph, region: set[str], producers) -> int | None:
    """The region's channel count, or None when some value does not come from a Conv or channelwise node."""
    counts = set()
    for value in region:
        node = producers.get(value)
        if node is None:
            return None
        if _channelwise(g, node):
            continue
        if not g.is_dense(node):
            return None
        counts.add(g.weight(node, 1).shape[0])
    return counts.pop() if len(counts) == 1 else None


def _region_closed(g: _Graph, region: set[str], consumers) -> bool:
    """Every use of the region is a channelwise node in it or a dense Conv reading it as its input."""
    for value in region:
        if value in g.outputs:
            return False
        for user in consumers.get(value, []):
            if not (_channelwise(g, user) or (g.is_dense(user) and user.input[0] == value)):
                return False
    return True
