"""Axis extents, typing and FLOP counts."""
import pytest

from tilec.ir.texpr import TexprError, parse_texpr

CONV = "Y[n, f, h, w] += X[n, c, h * 2 + kh - 1, w * 2 + kw - 1] * W[f, c, kh, kw]"


def test_extents_from_bare_positions_and_output():
    e = parse_texpr("C[m, n] += A[m, k] * B[k, n]")
    assert e.axis_extents([(4, 5), (5, 3)]) == {"m": 4, "n": 3, "k": 5}
    ext = parse_texpr(CONV).axis_extents([(1, 3, 8, 8), (6, 3, 3, 3)], (1, 6, 4, 4))
    assert list(ext.items()) == [("n", 1), ("f", 6), ("h", 4), ("w", 4), ("c", 3), ("kh", 3), ("kw", 3)]


def test_extents_from_hints():
    e = parse_texpr("Y[n, c, h, w] max= X[n, c, h * 2 + kh, w * 2 + kw]")
    ext = e.axis_extents([(1, 2, 8, 8)], (1, 2, 4, 4), {"kh": 2, "kw": 2})
    assert ext["kh"] == 2 and ext["h"] == 4
    with pytest.raises(TexprError, match="cannot infer the extent of axis 'kh', 'kw'") as info:
        e.axis_extents([(1, 2, 8, 8)], (1, 2, 4, 4))
    assert info.value.column == e.body.indices[2].rhs.pos
    with pytest.raises(TexprError, match="does not use"):
        e.axis_extents([(1, 2, 8, 8)], (1, 2, 4, 4), {"kh": 2, "kw": 2, "zz": 1})


def test_extent_conflicts():
    e = parse_texpr("C[m, n] += A[m, k] * B[k, n]")
    with pytest.raises(TexprError, match="axis 'k' has extent 6 from B dim 0 but 5 from A dim 1") as info:
        e.axis_extents([(4, 5), (6, 3)])
    assert info.value.column == 23  # the k of B[k, n]
    with pytest.raises(TexprError, match="from the axis hints but 3 from output dim 1"):
        e.axis_extents([(4, 5), (5, 3)], (4, 3), {"n": 2})
    # the output shape and hints win over inputs (a smaller input reads pad past its end, as in concat)
    assert e.axis_extents([(4, 5), (5, 3)], (4, 7)) == {"m": 4, "n": 7, "k": 5}
    assert e.axis_extents([(4, 5), (5, 3)], None, {"k": 2})["k"] == 2
    with pytest.raises(TexprError, match="rank 3 but is indexed with 2"):
        e.axis_extents([(4, 5, 1), (5, 3)])
    with pytest.raises(TexprError, match="2 inputs"):
        e.axis_extents([(4, 5)])


def test_result_dtype():
    rd = lambda text, *dts: parse_texpr(text).result_dtype(list(dts))
    assert rd("C[m, n] += A[m, k] * B[k, n]", "f16", "f32") == "f32"
    assert rd("C[m, n] += A[m, k] * B[k, n]", "f16", "bf16") == "f32"
    assert rd("Y[i] = X[i] * 2", "f16") == "f16"
    assert rd("Y[i] = X[i] * 0.5", "i32") == "f32"
    assert rd("Y[i] = X[i] + 1", "i8") == "i8"
    assert rd("Y[i] = X[i] + Z[i]", "u8", "i8") == "i32"
    assert rd("Y[i] = X[i] + Z[i]", "i32", "f64") == "f64"
    assert rd("Y[i] = X[i] < 1.0", "f32") == "bool"
    assert rd("Y[i] = valid(X[i - 1])", "f32") == "bool"
    assert rd("Y[i, j] = select(j >= i, X[i, j], 0.0)", "bf16") == "bf16"
    assert rd("Y[i] = exp(X[i])", "i64") == "f32"
    assert rd("Y[i] = abs(X[i])", "i64") == "i64"
    assert rd("Y[i] = i8(X[i])", "f32") == "i8"
    assert parse_texpr("Y[i] = 1.0 + 2").result_dtype([]) == "f32"
    assert rd("Y[i] = X[i] + 1", "f32") == "f32"
    assert parse_texpr("Y[i] = f32(i)").result_dtype([]) == "f32"
    assert parse_texpr("Y[i] = i + 1").result_dtype([]) == "i64"
    with pytest.raises(TexprError, match="unknown dtype"):
        rd("Y[i] = X[i]", "float32")


def test_flops():
    e = parse_texpr("C[m, n] += A[m, k] * B[k, n]")
    assert e.flops({"m": 2, "n": 3, "k": 4}) == 2 * 2 * 3 * 4
    # index arithmetic and casts are free; each operator and math call costs one
    e = parse_texpr("Y[i] = f32(X[i + 1]) * 2.0 + exp(-X[i])")
    assert e.flops({"i": 10}) == 4 * 10
