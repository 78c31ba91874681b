"""Index-map analysis: access maps, access boxes (conv halos) and classification."""
import pytest

from tilec.analysis.index_map import access_box, access_map, classify
from tilec.ir.texpr import TexprError, parse_texpr

CONV = "Y[n, f, h, w] += X[n, c, h * 2 + kh - 1, w * 2 + kw - 1] * W[f, c, kh, kw]"


def test_access_map_affine_and_quasi():
    e = parse_texpr(CONV)
    m = access_map(e, e.accesses[0])
    assert m.affine and m.axes == ("n", "f", "h", "w", "c", "kh", "kw")
    assert m.matrix[2] == (0, 0, 2, 0, 0, 1, 0) and m.consts == (0, 0, -1, -1)
    assert m.apply({"n": 0, "f": 0, "h": 3, "w": 0, "c": 2, "kh": 1, "kw": 0}) == (0, 2, 6, -1)
    q = parse_texpr("Y[i, j] = X[(i * 4 + j) / 12, (i * 4 + j) % 12]")
    mq = access_map(q, q.accesses[0])
    assert not mq.affine and mq.quasi_dims == (0, 1)
    assert mq.apply({"i": 5, "j": 3}) == (1, 11)


def test_access_box_conv_halo():
    e = parse_texpr(CONV)
    ranges = {"n": (0, 1), "f": (0, 8), "h": (4, 8), "w": (0, 4), "c": (0, 16), "kh": (0, 3), "kw": (0, 3)}
    # output rows 4..7 at stride 2 with a 3-tap window and pad 1 read input rows 7..16: tile 4 → box 9
    assert access_box(e, e.accesses[0], ranges) == [(0, 1), (0, 16), (7, 16), (-1, 8)]
    assert access_box(e, e.accesses[1], ranges) == [(0, 8), (0, 16), (0, 3), (0, 3)]


def test_access_box_negative_coefficient_and_quasi():
    e = parse_texpr("Y[i] += X[10 - i + k] * W[k]")
    assert access_box(e, e.accesses[0], {"i": (2, 5), "k": (0, 2)}) == [(6, 10)]
    q = parse_texpr("Y[i, j] = X[(i * 4 + j) / 12, (i * 4 + j) % 12]")
    box = access_box(q, q.accesses[0], {"i": (0, 3), "j": (0, 4)})
    assert box == [(0, 1), (0, 12)]  # rows 0..2 of 4 → flat 0..11: exact here
    box = access_box(q, q.accesses[0], {"i": (2, 5), "j": (0, 4)})
    assert box[0] == (0, 2) and box[1] == (0, 12)  # wraps a row: conservative modulus
    with pytest.raises(TexprError, match="no range for axis 'j'"):
        access_box(q, q.accesses[0], {"i": (0, 1)})
    with pytest.raises(TexprError, match="empty range"):
        access_box(q, q.accesses[0], {"i": (0, 0), "j": (0, 1)})


@pytest.mark.parametrize("text, kind", [
    ("Y[i, j] = X[i, j] + Z[i, j]", "elementwise"),
    ("Y[i, j] = X[i, j] + B[j] + S[0, j]", "broadcast"),
    ("Y[i, j] = X[j, i]", "transpose"),
    ("Y[i] = X[i + 1]", "other"),
    ("C[m, n] += A[m, k] * B[k, n]", "contraction"),
    ("C[b, m, n] += A[b, m, k] * B[b, k, n]", "contraction"),
    (CONV, "conv"),
    ("Y[n, c, h, w] max= X[n, c, h * 2 + kh, w * 2 + kw]", "conv"),  # pooling tiles like a conv
    ("Y[i] += X[i, j]", "reduction"),
    ("Y[i] += X[i, j] * X[i, j]", "reduction"),
    ("Y[i] max= X[i, j / 2]", "other"),
])
def test_classify(text, kind):
    assert classify(parse_texpr(text)) == kind
