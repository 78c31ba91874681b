"""Valid IR seeds and seeded mutations of them, for fuzzing the parser and the verifier.

Mutations work on tokens (delete, duplicate, swap, replace) and on bytes, and inject the inputs that have
broken IR parsers before: huge and negative dims, digit flips, unbalanced brackets, unicode, NUL bytes,
very deep nesting, and ``"`` / ``*/`` inside names. ``mutate(text, rng)`` is deterministic for a seeded
``random.Random``.
"""
from __future__ import annotations

import random
import re

from ..ir.diagnostics import CompileError

SEEDS = {
    "weights": '''module @m {
  tile.weight @w0 : tensor<4x4xf32>
  func.func @main(%x: tensor<1x4xf32>) -> (tensor<4x4xf32>, tensor<1x4xf32>) {
    %0 = "tile.const"() {value = @w0} : () -> (tensor<4x4xf32>)
    %1 = "tile.const"() {value = dense<[1.0, -2.5, inf, 3e-05]> : tensor<4xf32>} : () -> (tensor<4xf32>)
    %2 = "graph.add"(%x, %1) : (tensor<1x4xf32>, tensor<4xf32>) -> (tensor<1x4xf32>) loc("m.onnx":"Add_0")
    return %0, %2 : tensor<4x4xf32>, tensor<1x4xf32>
  }
}
''',
    "graph": '''module @g attributes {tilec.stage = "import"} {
  func.func @main(%x: tensor<2x3x5xf32>, %y: tensor<5xf32>) -> (tensor<1x3x1xf32>) attributes {arg_names = ["x", "y"], result_names = ["z"]} {
    %c = "tile.const"() {value = dense<[[1, 2], [3, 4]]> : tensor<2x2xi64>} : () -> (tensor<2x2xi64>)
    %0 = "graph.relu"(%x) : (tensor<2x3x5xf32>) -> (tensor<2x3x5xf32>) loc("g.onnx":"relu */ \\"x\\"")
    %1 = "graph.mul"(%0, %y) : (tensor<2x3x5xf32>, tensor<5xf32>) -> (tensor<2x3x5xf32>) loc("g.onnx":10:3)
    %2 = "graph.reduce_sum"(%1) {keepdims = 1, axes = [0, 2]} : (tensor<2x3x5xf32>) -> (tensor<1x3x1xf32>)
    return %2 : tensor<1x3x1xf32>
  }
}
''',
    "generic": '''"builtin.module"() ({
  "func.func"() ({
  ^bb0(%a: tensor<3xf32>, %b: tensor<3xf32>):
    %0 = "graph.sub"(%a, %b) : (tensor<3xf32>, tensor<3xf32>) -> (tensor<3xf32>)
    %1 = "graph.where"(%t, %0, %a) : (tensor<3xbool>, tensor<3xf32>, tensor<3xf32>) -> (tensor<3xf32>)
    "func.return"(%1) : (tensor<3xf32>) -> ()
  }) {sym_name = @main, function_type = (tensor<3xf32>, tensor<3xf32>) -> (tensor<3xf32>)} : () -> ()
}) : () -> ()
''',
    "bare": '''func.func @"we\\"ird */ name"(%x: tensor<2x2xf16>) -> (tensor<2x2xf16>) {
  %0 = "graph.softmax"(%x) {axis = -1} : (tensor<2x2xf16>) -> (tensor<2x2xf16>)
  return %0 : tensor<2x2xf16>
}
''',
}
# 'generic' reads %t before defining it on purpose: a seed whose verification fails is useful too.
SEEDS["generic"] = SEEDS["generic"].replace('(%a: tensor<3xf32>, %b: tensor<3xf32>)',
                                            '(%a: tensor<3xf32>, %b: tensor<3xf32>, %t: tensor<3xbool>)') \
    .replace("function_type = (tensor<3xf32>, tensor<3xf32>)",
             "function_type = (tensor<3xf32>, tensor<3xf32>, tensor<3xbool>)")

# Seeds with tile.compute need the tensor-expression parser (tilec.ir.texpr) to verify.
COMPUTE_SEEDS = {
    "compute": '''module @c {
  func.func @main(%a: tensor<8x4xf32>, %b: tensor<4x6xf32>) -> (tensor<8x6xf32>) {
    %0 = tile.compute "C[m, n] += A[m, k] * B[k, n]" (%a, %b) : (tensor<8x4xf32>, tensor<4x6xf32>) -> tensor<8x6xf32>
    %1 = tile.compute "Y[i, j] = max(X0[i, j], 0.0)" (%0) {origin = "graph.relu"} : (tensor<8x6xf32>) -> tensor<8x6xf32>
    %2 = tile.compute "Y[n, f] += X[n, f*2 + r - 1]" (%1) {pad = 0.0, axes = {r = 3}} : (tensor<8x6xf32>) -> tensor<8x3xf32>
    return %1 : tensor<8x6xf32>
  }
}
''',
}




def all_seeds(extra: dict | None = None) -> dict:
    seeds = dict(SEEDS)
    seeds.update(COMPUTE_SEEDS)
    seeds.update(extra or {})
    return seeds


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|tensor<[^>]*>|[%@^][\w$.#\-]+|-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?'
                    r"|[A-Za-z_][\w.]*|->|\s+|.", re.S)


def tokenize(text: str) -> list:
    return _TOKEN.findall(text)


HOSTILE_STRINGS = ['"', '*/', '/*', '\\', '\\"', '\n', '\x00', '\u202e', '\ud800', '\U0001f600', 'ü∑',
                   '#define X 1', '"*/ #include <x>', '\\u0000', "\\xff", '%', '@', '#', '^', '^bb9:']
HUGE_NUMBERS = ["99999999999", "18446744073709551617", "-1", "-99999999999", "0", "9" * 400, "1e308", "1e999",
                "-0", "2147483648", "4294967296"]
TYPES = ["tensor<99999999999x99999999999xf32>", "tensor<0xf32>", "tensor<f32>", "tensor<?x3xf32>",
         "tensor<-3x4xf32>", "tensor<4294967296x4294967296x4294967296xf64>", "tensor<1x1x1x1x1x1x1x1x1xbool>",
         "tensor<3xbf16>", "tensor<3xi8>", "tensor<" + "2x" * 64 + "f32>", "tensor<3xcomplex>"]
BRACKETS = list("{}()[]<>")


def _rand_token(rng: random.Random, toks: list) -> str:
    return rng.choice([t for t in toks if not t.isspace()] or ["x"])


def _deep(rng: random.Random) -> str:
    depth = rng.choice([50, 500, 3000, 20000])
    kind = rng.randrange(4)
    if kind == 0:
        return "[" * depth + "1" + "]" * depth
    if kind == 1:
        return "{a = " * depth + "1" + "}" * depth
    if kind == 2:
        return '"t.r"() ({ ' * depth + "}) : () -> () " * depth
    return "dense<" + "[" * depth + "1.0" + "]" * depth + "> : tensor<" + "1x" * min(depth, 300) + "f32>"


def _m_delete(rng, toks):
    if toks:
        del toks[rng.randrange(len(toks))]


def _m_duplicate(rng, toks):
    if toks:
        i = rng.randrange(len(toks))
        toks.insert(i, toks[i])


def _m_swap(rng, toks):
    if len(toks) > 1:
        i, j = rng.randrange(len(toks)), rng.randrange(len(toks))
        toks[i], toks[j] = toks[j], toks[i]


def _m_replace(rng, toks):
    if toks:
        toks[rng.randrange(len(toks))] = _rand_token(rng, toks)


def _m_flip_digit(rng, toks):
    idx = [i for i, t in enumerate(toks) if any(c.isdigit() for c in t)]
    if idx:
        i = rng.choice(idx)
        chars = list(toks[i])
        d = rng.choice([k for k, c in enumerate(chars) if c.isdigit()])
        chars[d] = rng.choice("0123456789")
        toks[i] = "".join(chars)


def _m_huge_number(rng, toks):
    idx = [i for i, t in enumerate(toks) if re.fullmatch(r"-?\d+(\.\d*)?", t)]
    if idx:
        toks[rng.choice(idx)] = rng.choice(HUGE_NUMBERS)


def _m_dims(rng, toks):
    idx = [i for i, t in enumerate(toks) if t.startswith("tensor<")]
    if not idx:
        return
    i = rng.choice(idx)
    if rng.random() < 0.5:
        toks[i] = rng.choice(TYPES)
    else:  # one dim of this type becomes huge, zero or negative
        dims = toks[i][len("tensor<"):-1].split("x")
        if len(dims) > 1:
            dims[rng.randrange(len(dims) - 1)] = rng.choice(["99999999999", "0", "-1", "?", "1"])
        toks[i] = "tensor<" + "x".join(dims) + ">"


def _m_bracket(rng, toks):
    i = rng.randrange(len(toks) + 1)
    br = [k for k, t in enumerate(toks) if t in BRACKETS]
    if br and rng.random() < 0.5:
        del toks[rng.choice(br)]
    else:
        toks.insert(i, rng.choice(BRACKETS))


def _m_hostile_string(rng, toks):
    idx = [i for i, t in enumerate(toks) if t.startswith(('"', "@", "%"))]
    s = rng.choice(HOSTILE_STRINGS)
    if idx and rng.random() < 0.7:
        i = rng.choice(idx)
        t = toks[i]
        cut = rng.randrange(1, max(2, len(t)))
        toks[i] = t[:cut] + s + t[cut:]
    else:
        toks.insert(rng.randrange(len(toks) + 1), s)


def _m_deep(rng, toks):
    idx = [i for i, t in enumerate(toks) if t in ("[", "{", "1", "1.0", "0")] or [0]
    toks.insert(rng.choice(idx), _deep(rng))


def _m_truncate(rng, toks):
    del toks[rng.randrange(len(toks) + 1):]


MUTATORS = [_m_delete, _m_duplicate, _m_swap, _m_replace, _m_flip_digit, _m_huge_number, _m_dims, _m_bracket,
            _m_hostile_string, _m_deep, _m_truncate]


def _byte_mutation(rng: random.Random, text: str) -> str:
    data = bytearray(text.encode("utf-8", "surrogatepass"))
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(3)
        if op == 0:
            data[i] = rng.randrange(256)
        elif op == 1:
            data.insert(i, rng.choice([0, 0x22, 0x5c, 0x0a, 0xff, 0xc3, 0x7b, 0x7d]))
        else:
            del data[i]
    # Readers decode files as UTF-8; what does not decode is rejected before parsing, so keep it text.
    return data.decode("utf-8", "replace")


def mutate(text: str, rng: random.Random) -> str:
    """1 to 3 random mutations of ``text`` (token-level mostly, byte-level sometimes)."""
    if rng.random() < 0.15:
        return _byte_mutation(rng, text)
    toks = tokenize(text)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        rng.choice(MUTATORS)(rng, toks)
    return "".join(toks)


def mutants(seeds: dict, n: int, seed: int = 0):
    """``n`` (name, text) mutants, deterministic in ``seed``, cycling over ``seeds``."""
    rng = random.Random(seed)
    names = sorted(seeds)
    for k in range(n):
        name = names[k % len(names)]
        yield f"{name}#{k}", mutate(seeds[name], rng)


def check_ir(text: str, run_passes: bool = False) -> None:
    """Parse and verify ``text`` (the contract: this returns or raises CompileError); with ``run_passes``
    a module that verifies also goes through the front pipeline (verify-each on)."""
    from ..ir.parser import parse_module
    from ..ir.verifier import verify
    module = parse_module(text, "fuzz.tir")
    verify(module, text)
    if run_passes:
        from ..driver import FRONT_PASSES
        from ..passes.pipeline import PassManager, parse_pipeline
        PassManager(passes=parse_pipeline(FRONT_PASSES)).run(module)


def ensure_valid(seeds: dict) -> None:
    """Seeds must parse (whether they verify is their business); a broken seed fuzzes nothing."""
    from ..ir.parser import parse_module
    for name, text in seeds.items():
        try:
            parse_module(text, name)
        except CompileError as e:
            raise AssertionError(f"seed '{name}' does not parse: {e}") from None
