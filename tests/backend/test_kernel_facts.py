"""Kernel facts (``backend/kernel_facts``): what a kernel does, asked of its IR, and the virtual block index
as a rendering parameter. Kernels built with the builder (barrier, shuffle, shared memory, ``blockIdx.y``,
a cluster barrier, calls in expressions) and hand-written ones (an opaque gather, arg-max kernels, an
undeclared source) get the answers their bodies call for; Rammer packs exactly the ones that can run with a
virtual block index."""
import pytest

from tilec.backend.kernel_facts import kernel_facts, source_body
from tilec.backend.lower.argreduce import lower_arg_reduce
from tilec.backend.lower.builder import KernelBuilder, thread_index
from tilec.backend.lower.persistent import device_function, guardable
from tilec.backend.opaque import UNKNOWN, source_facts
from tilec.backend.opaque.common import elementwise_source_func
from tilec.ir import TensorType
from tilec.ir.kexpr import Binary, BlockIdx, Const, Var
from tilec.passes.rammer import kernel_member

from lower_harness import function_module

PARAMS = [{"name": "x", "dtype": "f32", "role": "in", "shape": [1024]},
          {"name": "y", "dtype": "f32", "role": "out", "shape": [1024]}]


def _kernel(body, grid=(4,), block=(256,), **attrs):
    kb = KernelBuilder()
    kb.let("k_t", "i32", thread_index(256))
    body(kb)
    return kb.func("k0_test", list(grid), list(block), PARAMS, kind="test", **attrs)


def _copy(kb):
    kb.load("k_v", "f32", "x", "k_t")
    kb.store("y", "k_t", "k_v")


def test_independent_threads():
    f = kernel_facts(_kernel(_copy))
    assert not (f.barrier or f.shuffle or f.shared or f.shape_bound or f.synchronises or f.whole_block)
    assert f.block_axes == {"x"}
    m = kernel_member(_kernel(_copy), 0)
    assert m is not None and not m.barriers


def test_a_barrier_synchronises_the_block():
    k = _kernel(lambda kb: (kb.shared("k_s", "f32", [256]), kb.assign("k_s[threadIdx.x]", "1.0f"),
                            kb.barrier(), _copy(kb)))
    f = kernel_facts(k)
    assert f.barrier and f.shared and f.whole_block and not f.shape_bound
    assert kernel_member(k, 0).barriers


def test_a_shuffle_needs_the_whole_warp():
    k = _kernel(lambda kb: (kb.local("k_acc", "f32", init="0.0f"), kb.warp_reduce("k_acc", "sum", "f32")))
    f = kernel_facts(k)
    assert f.shuffle and f.whole_block and not f.barrier and not f.shared


def test_sync_calls_inside_expressions_count():
    k = _kernel(lambda kb: kb.assign("k_c", "__syncthreads_or(k_t < 3)"))
    assert kernel_facts(k).barrier
    k = _kernel(lambda kb: kb.assign("k_c", "__shfl_down_sync(0xffffffffu, k_c, 1)"))
    assert kernel_facts(k).shuffle


@pytest.mark.parametrize("reads", ["blockIdx.y", "gridDim.x", "blockDim.x", "tl_cluster_rank()"])
def test_reading_the_launch_shape_binds_the_grid(reads):
    k = _kernel(lambda kb: kb.store("y", Binary("+", Var("k_t"), Const(0)), reads))
    f = kernel_facts(k)
    assert f.shape_bound
    assert kernel_member(k, 0) is None   # Rammer cannot give it a virtual block index


def test_block_axes_lists_every_block_index_read():
    k = _kernel(lambda kb: kb.store("y", "blockIdx.y * 4 + blockIdx.x", "0.0f"))
    assert kernel_facts(k).block_axes == {"x", "y"}


def test_cluster_barrier_and_dynamic_shared_memory_bind_the_grid():
    assert kernel_facts(_kernel(lambda kb: kb.barrier("cluster"))).shape_bound
    k = _kernel(_copy)
    k.attributes["smem"] = 1024
    assert kernel_facts(k).shape_bound


def test_guardable_asks_the_loop_bounds_for_array_reads():
    def loop_over(hi):
        def body(kb):
            with kb.loop("k_i", 0, hi):
                kb.barrier()
        return body
    assert guardable(_kernel(loop_over("k_n + 4")))
    assert not guardable(_kernel(loop_over("k_len[0]")))
    assert not guardable(_kernel(loop_over("TL_LD(x, 0)")))


def _gather_kernel():
    m = function_module([TensorType((10, 20), "f32"), TensorType((3,), "i64")], TensorType((3, 20), "f32"),
                        lambda b, a: b.create("graph.gather", a, [TensorType((3, 20), "f32")], {"axis": 0}).result)
    from tilec.backend.opaque import lower_opaque
    op = next(o for o in m.walk() if o.name == "graph.gather")
    k = lower_opaque(op, 0)
    assert k is not None and "source" in k.attributes
    return k


def test_an_opaque_kernel_declares_its_facts():
    k = _gather_kernel()
    f = kernel_facts(k)
    assert not (f.barrier or f.shuffle or f.shared or f.shape_bound)
    m = kernel_member(k, 0)
    assert m is not None and not m.barriers


def test_an_opaque_body_renders_the_virtual_block_index_in_its_declared_line():
    k = _gather_kernel()
    threads = k.attributes["block"][0]
    plain = source_body(k)
    assert plain[0] == f"const long long k_t = (long long)blockIdx.x * {threads} + threadIdx.x;"
    lines = device_function(k, "f0", overlay=False)
    assert lines[0].endswith("const int k_vb) {")
    assert lines[1] == f"  const long long k_t = (long long)k_vb * {threads} + threadIdx.x;"
    assert lines[2:-1] == ["  " + ln if ln else "" for ln in plain[1:]]
    wide = device_function(k, "f0", overlay=False, virtual_threads=True)
    assert wide[0].endswith("const int k_vb, const int k_vt) {")
    assert wide[1] == f"  const long long k_t = (long long)k_vb * {threads} + k_vt;"


def test_a_source_line_that_no_longer_matches_its_declaration_is_refused():
    k = _gather_kernel()
    k.attributes["source"] = k.attributes["source"].replace("(long long)blockIdx.x", "(long long)blockIdx.x + 0", 1)
    with pytest.raises(ValueError, match="declared index line"):
        device_function(k, "f0", overlay=False)


def _arg_kernel(reduce):
    x, y = TensorType((6, reduce), "f32"), TensorType((6,), "i64")
    m = function_module([x], y, lambda b, a: b.create("graph.arg_max", a, [y], {"axis": 1, "keepdims": 0}).result)
    op = next(o for o in m.walk() if o.name == "graph.arg_max")
    return lower_arg_reduce(op, 0)


def test_arg_reduce_kernels_declare_their_shuffles():
    serial, warp = _arg_kernel(16), _arg_kernel(500)
    assert not kernel_facts(serial).synchronises
    assert kernel_facts(warp).shuffle and kernel_facts(warp).whole_block
    assert "(long long)k_vb * " in device_function(serial, "f", overlay=False)[2]
    assert "(long long)k_vb * " in device_function(warp, "f", overlay=False)[2]
    # the warp kernel reads threadIdx.x for its lane elsewhere: no virtual thread index for it
    with pytest.raises(ValueError, match="outside its declared index lines"):
        device_function(warp, "f", overlay=False, virtual_threads=True)


def test_an_undeclared_source_gets_the_conservative_answer():
    m = function_module([TensorType((8,), "f32")], TensorType((8,), "f32"),
                        lambda b, a: b.create("graph.relu", a, [TensorType((8,), "f32")], {}).result)
    op = next(o for o in m.walk() if o.name == "graph.relu")
    k = elementwise_source_func(op, "k0_x", [dict(p) for p in PARAMS], "TL_ST(y, k_t, 0.0f);", 8, 32)
    k.attributes["kind"] = "hand_written"   # not an opaque entry: nobody declared what it does
    assert source_facts(k) is UNKNOWN
    f = kernel_facts(k)
    assert f.barrier and f.shuffle and f.shared and f.shape_bound
    assert kernel_member(k, 0) is None
    with pytest.raises(ValueError):
        source_body(k, {BlockIdx(): Var("k_vb")})


def test_a_kernel_ir_body_renders_its_registers_as_the_device_function_asks():
    def body(kb):
        kb.shared("k_s", "f32", [256])
        kb.assign("k_s[threadIdx.x]", "1.0f")
        kb.barrier()
        kb.store("y", "blockIdx.x * 256 + threadIdx.x", "k_s[threadIdx.x]")
    k = _kernel(body, block=(128,))
    plain = device_function(k, "f", overlay=False)
    text = "\n".join(plain)
    assert "blockIdx" not in text and "k_vb * 256 + threadIdx.x" in text
    guarded = "\n".join(device_function(k, "f", guarded=True, overlay=False))
    # the guarded body indexes with k_tid (thread 0's index for the extra threads) and keeps its barrier
    assert "k_s[k_tid] = 1.0f;" in guarded and "__syncthreads();" in guarded
    assert "threadIdx" not in guarded.split("k_tid = k_on ? threadIdx.x : 0u;", 1)[1]
