"""DepthPeeler: successive depth layers.

Oracle: each triangle rasterized on its own gives its coverage and z/w at every pixel (the same
setup and depth expression as in a full render); sorting a pixel's fragments by (z/w, id) gives
the layers exactly, so layer k must hold the k-th fragment, bit for bit.
"""

import numpy as np
import pytest
import torch

import rastlit

torch.manual_seed(0)


def soup(num_tris, seed, dtype=torch.float32, views=1):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(num_tris, 1, 2, generator=g, dtype=torch.float64) * 0.8 - 0.4
    xy = centres + (torch.rand(num_tris, 3, 2, generator=g, dtype=torch.float64) - 0.5) * 2.0
    z = torch.rand(num_tris, 3, 1, generator=g, dtype=torch.float64) * 1.6 - 0.8
    w = torch.rand(num_tris, 3, 1, generator=g, dtype=torch.float64) + 0.5
    pos = torch.cat([xy * w, z * w, w], -1).reshape(-1, 4)
    # view b: shifted right by 0.1 * b in NDC
    shift = torch.tensor([0.1, 0.0, 0.0, 0.0], dtype=torch.float64)
    pos = torch.stack([pos + b * shift * pos[:, 3:] for b in range(views)])
    tri = torch.arange(3 * num_tris, dtype=torch.int32).view(-1, 3)
    return pos.to(dtype), tri


def oracle_layers(pos, tri, res, num_layers, ranges=None):
    """[L,B,H,W,4] expected layers from per-triangle renders sorted by (z, id)."""
    B = pos.shape[0] if pos.dim() == 3 else ranges.shape[0]
    H, W = res
    frags = [[[[] for _ in range(W)] for _ in range(H)] for _ in range(B)]
    for t in range(tri.shape[0]):
        if ranges is None:
            r, _ = rastlit.rasterize(pos, tri[t:t + 1], res)
            views = range(B)
        else:
            # the triangle alone, in the views whose range contains it
            views = [b for b in range(B) if ranges[b, 0] <= t < ranges[b, 0] + ranges[b, 1]]
            if not views:
                continue
            r, _ = rastlit.rasterize(pos[None].expand(B, -1, -1).contiguous(), tri[t:t + 1], res)
        for b in views:
            ys, xs = torch.nonzero(r[b, ..., 3] > 0, as_tuple=True)
            for y, x in zip(ys.tolist(), xs.tolist()):
                frags[b][y][x].append((r[b, y, x, 2].item(), t, r[b, y, x, :2].clone()))
    out = torch.zeros((num_layers, B, H, W, 4), dtype=pos.dtype)
    for b in range(B):
        for y in range(H):
            for x in range(W):
                for k, (z, t, uv) in enumerate(sorted(frags[b][y][x], key=lambda f: (f[0], f[1]))[:num_layers]):
                    out[k, b, y, x, :2] = uv
                    out[k, b, y, x, 2] = z
                    out[k, b, y, x, 3] = t + 1
    return out


def peel(pos, tri, res, num_layers, **kw):
    layers = []
    with rastlit.DepthPeeler(pos, tri, res, **kw) as peeler:
        for _ in range(num_layers):
            layers.append(peeler.rasterize_next_layer())
    return layers


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layers_match_sorted_fragments(dtype):
    pos, tri = soup(12, seed=1, dtype=dtype, views=2)
    res = (24, 20)
    layers = peel(pos, tri, res, 6)
    expected = oracle_layers(pos, tri, res, 6)
    assert (expected[2, ..., 3] > 0).any(), "scene has no third layer anywhere"
    for k, (rast, _db) in enumerate(layers):
        # ids exactly; u, v, z bitwise (same setup and expressions as the single-triangle render)
        assert torch.equal(rast[..., 3], expected[k, ..., 3]), f"layer {k} ids"
        assert torch.equal(rast, expected[k]), f"layer {k} values"
    # The first layer is rasterize's output.
    r0, db0 = rastlit.rasterize(pos, tri, res)
    assert torch.equal(layers[0][0], r0) and torch.equal(layers[0][1], db0)


def test_range_mode():
    pos, tri = soup(10, seed=2)
    pos = pos[0]
    ranges = torch.tensor([[0, 6], [3, 7]], dtype=torch.int32)
    res = (16, 16)
    layers = peel(pos, tri, res, 4, ranges=ranges)
    expected = oracle_layers(pos, tri, res, 4, ranges=ranges)
    assert (expected[1, ..., 3] > 0).any()
    for k, (rast, _db) in enumerate(layers):
        assert torch.equal(rast, expected[k]), f"layer {k}"


def test_coplanar_duplicates_peel_in_id_order():
    # Three copies of one triangle (exactly equal depth everywhere): one per layer, lowest id first.
    v = torch.tensor([[-0.9, -0.9, 0.2, 1.0], [0.9, -0.9, 0.2, 1.0], [0.0, 0.9, 0.2, 1.0]])
    pos = v.repeat(3, 1)[None]
    tri = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]], dtype=torch.int32)
    layers = peel(pos, tri, (16, 16), 4)
    covered = layers[0][0][..., 3] > 0
    assert covered.sum() > 50
    for k in range(3):
        ids = layers[k][0][..., 3]
        assert torch.all(ids[covered] == k + 1), f"layer {k}"
        assert torch.all(ids[~covered] == 0)
    assert torch.all(layers[3][0] == 0)


def test_empty_pixels_stay_empty_and_layers_run_out():
    pos, tri = soup(4, seed=3)
    layers = peel(pos, tri, (16, 16), 6)
    for k in range(1, 6):
        prev_empty = layers[k - 1][0][..., 3] == 0
        assert torch.all(layers[k][0][..., 3][prev_empty] == 0)
    assert torch.all(layers[5][0] == 0)  # at most 4 fragments per pixel


def test_gradients_of_a_deeper_layer():
    # Layer 1 (the back triangle where both overlap) is differentiable like rasterize.
    front = [[-0.5, -0.6, -0.5, 1.0], [0.7, -0.4, -0.5, 1.0], [0.1, 0.8, -0.5, 1.0]]
    back = [[-0.8, -0.7, 0.3, 1.3], [0.8, -0.8, 0.4, 1.1], [0.0, 0.9, 0.5, 1.2]]
    pos = torch.tensor([front + back], dtype=torch.float64, requires_grad=True)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)

    def second_layer(p):
        with rastlit.DepthPeeler(p, tri, (12, 12)) as peeler:
            peeler.rasterize_next_layer()
            rast, db = peeler.rasterize_next_layer()
        return rast[..., :2], db

    rast, _ = second_layer(pos)
    assert torch.all(rast.detach()[..., 0][rast.detach().abs().sum(-1) > 0] >= 0)
    torch.autograd.gradcheck(second_layer, (pos,), atol=1e-7, rtol=1e-6)
    # Only the back triangle's vertices get gradient from layer 1 (the front one is peeled away
    # everywhere it covers).
    with rastlit.DepthPeeler(pos, tri, (12, 12)) as peeler:
        peeler.rasterize_next_layer()
        r1, _ = peeler.rasterize_next_layer()
    (r1[..., :2].sum()).backward()
    assert torch.all(pos.grad[0, :3] == 0) and pos.grad[0, 3:].abs().sum() > 0


def test_must_be_used_as_context_manager():
    pos, tri = soup(2, seed=4)
    peeler = rastlit.DepthPeeler(pos, tri, (8, 8))
    with pytest.raises(RuntimeError, match="inside a `with DepthPeeler"):
        peeler.rasterize_next_layer()
    with peeler:
        peeler.rasterize_next_layer()
    with pytest.raises(RuntimeError, match="inside"):
        peeler.rasterize_next_layer()
    # Re-entering starts again from the first layer.
    with peeler:
        r0, _ = peeler.rasterize_next_layer()
    assert torch.equal(r0, rastlit.rasterize(pos, tri, (8, 8))[0])


def test_bad_previous_layer():
    pos, tri = soup(2, seed=5)
    op = torch.ops.rastlit.rasterize_fwd
    with pytest.raises(ValueError, match=r"peel .*must have shape \[1,8,8,4\]"):
        op(pos, tri, 8, 8, None, True, torch.zeros(1, 8, 9, 4))
    with pytest.raises(TypeError, match="peel must have the dtype of pos"):
        op(pos, tri, 8, 8, None, True, torch.zeros(1, 8, 8, 4, dtype=torch.float64))
    bad = torch.zeros(1, 8, 8, 4)
    bad[0, 3, 3, 3] = 7.0  # id + 1 beyond the 2 triangles
    with pytest.raises(IndexError, match="triangle id"):
        op(pos, tri, 8, 8, None, True, bad)
    with pytest.raises(ValueError, match="resolution"):
        rastlit.DepthPeeler(pos, tri, (0, 8))
