//===- RuntimeTest.cpp - Self-checks for the GPU runtime ------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Standalone test (no framework), runs on machines without a GPU: the JSON
// parser, manifest parsing and its error messages, PTX signature checks,
// problem validation, kernel selection, grids and parameter packing (through
// lib/RuntimeInternal.h), and the C API's behaviour without a driver. When a
// CUDA device is present it also runs the toy bundle (test/Inputs/toy_bundle)
// forward and backward and checks the driver-side errors (bad PTX, too much
// shared memory).
//
// Usage: fa-runtime-test [INPUTS_DIR]   (default: the source tree's Inputs)
// Prints one line per check and a final "N passed, M failed"; exits 1 on any
// failure.
//
//===----------------------------------------------------------------------===//

#include "RuntimeInternal.h"
#include "flashmlir/runtime/fa_runtime.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace flashmlir::rt;

namespace {

int gPassed = 0, gFailed = 0;
std::string gInputs = FLASHMLIR_RUNTIME_TEST_INPUTS;
std::string gTmp;

void check(bool ok, const std::string &name, const std::string &detail = "") {
  if (ok)
    ++gPassed;
  else
    ++gFailed;
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(),
              detail.empty() ? "" : ": ", detail.c_str());
}

/// The handle's last error as a check detail, only when `ok` is false.
std::string errIf(bool ok, fa_runtime *rt) {
  return ok ? "" : fa_runtime_last_error(rt);
}

bool contains(const std::string &s, const std::string &sub) {
  return s.find(sub) != std::string::npos;
}

/// Checks that `err` contains every one of `subs`.
void checkMessage(const std::string &name, bool failed, const std::string &err,
                  std::initializer_list<const char *> subs) {
  bool ok = failed;
  for (const char *s : subs)
    ok = ok && contains(err, s);
  check(ok, name, failed ? err : "unexpectedly succeeded");
}

std::string replaceOnce(std::string s, const std::string &from,
                        const std::string &to) {
  size_t p = s.find(from);
  if (p == std::string::npos) {
    std::printf("test bug: '%s' not in template\n", from.c_str());
    std::exit(2);
  }
  return s.replace(p, from.size(), to);
}

bool writeFile(const std::string &path, const std::string &text) {
  std::FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return false;
  std::fwrite(text.data(), 1, text.size(), f);
  return std::fclose(f) == 0;
}

/// A fresh bundle directory under the test's temporary directory.
std::string makeBundle(const std::string &name, const std::string &manifest,
                       const std::vector<std::pair<std::string, std::string>>
                           &files = {}) {
  std::string dir = gTmp + "/" + name;
  std::string cmd = "mkdir -p '" + dir + "'";
  if (std::system(cmd.c_str()) != 0)
    std::printf("warning: cannot create %s\n", dir.c_str());
  writeFile(dir + "/manifest.json", manifest);
  for (const auto &f : files)
    writeFile(dir + "/" + f.first, f.second);
  return dir;
}

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

void testJson() {
  JsonValue v;
  std::string err;
  bool ok = parseJson(
      R"( {"a": [1, -2, 3.5, 1e3, true, false, null], "s": "x\"\\\/\n\u00e9\ud83d\ude00",
           "o": {"k": {}}, "e": []} )",
      &v, &err);
  check(ok, "json: parses a nested document", err);
  if (ok) {
    const JsonValue *a = v.get("a");
    check(a && a->kind == JsonValue::Kind::Array && a->array.size() == 7,
          "json: array members");
    check(a && a->array[0].isInt && a->array[0].integer == 1 &&
              a->array[1].integer == -2,
          "json: integers are exact");
    check(a && !a->array[2].isInt && a->array[2].number == 3.5 &&
              !a->array[3].isInt && a->array[3].number == 1000,
          "json: fractions and exponents are not integers");
    check(a && a->array[4].kind == JsonValue::Kind::Bool &&
              a->array[4].boolean && !a->array[5].boolean &&
              a->array[6].kind == JsonValue::Kind::Null,
          "json: literals");
    const JsonValue *s = v.get("s");
    check(s && s->string == "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80",
          "json: escapes and surrogate pairs decode to UTF-8");
    check(v.get("o") && v.get("o")->get("k") &&
              v.get("o")->get("k")->kind == JsonValue::Kind::Object &&
              v.get("missing") == nullptr,
          "json: object lookup");
  }
  struct Bad {
    const char *text, *expect;
  } bad[] = {
      {"{\"a\": 1,}", "line 1, column 9: expected a string key"},
      {"[1, 2", "expected ',' or ']'"},
      {"{\"a\": \"x}", "unterminated string"},
      {"{\"a\": 1} x", "unexpected text after"},
      {"{\n  \"a\": tru\n}", "line 2, column 8: invalid literal"},
      {"{\"a\": 01}", "leading zeros"},
      {"{\"a\": 1, \"a\": 2}", "duplicate key \"a\""},
      {"// comment\n{}", "unexpected character '/'"},
      {"\"\\ud800\"", "unpaired surrogate"},
      {"", "unexpected end of input"},
  };
  for (const Bad &b : bad) {
    JsonValue w;
    std::string e;
    bool failed = !parseJson(b.text, &w, &e);
    checkMessage(std::string("json: rejects ") + b.expect, failed, e,
                 {b.expect});
  }
}

//===----------------------------------------------------------------------===//
// Manifests
//===----------------------------------------------------------------------===//

const char *kKernel =
    R"({"name": "k1", "file": "a.ptx", "entry": "attn_fwd", "kind": "fwd",
  "config": {"dtype": "bf16", "head_dim": 128, "head_dim_v": 128, "causal": true,
             "window": false, "softcap": false, "target": "sm_90"},
  "block": [128, 1, 1], "dynamic_smem": 36864,
  "grid": [{"dim": "seqlen_q", "div": 64}, {"dim": "heads", "div": 1}, {"dim": "batch", "div": 1}],
  "args": [{"name": "q", "kind": "buffer"}, {"name": "batch", "kind": "i64"},
           {"name": "heads", "kind": "i32"}, {"name": "scale", "kind": "f32"}],
  "resources": {"registers": 255, "spills": [0, 0]}})";

std::string manifestOf(const std::string &kernels) {
  return R"({"format": "flashmlir-bundle", "version": 1, "kernels": [)" +
         kernels + "]}";
}

/// kKernel with its args as index `list` of a version-2 manifest's
/// arg_lists (`lists`: the JSON array's members).
std::string sharedArgsManifest(const std::string &lists,
                               const std::vector<std::pair<std::string, int>>
                                   &kernels) {
  std::string body;
  for (const auto &[name, list] : kernels) {
    std::string k = replaceOnce(kKernel, R"("name": "k1")",
                                "\"name\": \"" + name + "\"");
    size_t a = k.find(R"("args": [)"), e = k.find("]", a);
    k = k.substr(0, a) + "\"args\": " + std::to_string(list) + k.substr(e + 1);
    body += (body.empty() ? "" : ",") + k;
  }
  return R"({"format": "flashmlir-bundle", "version": 2, "arg_lists": [)" +
         lists + R"(], "kernels": [)" + body + "]}";
}

void testManifest() {
  // Version 2: argument lists shared through indices into arg_lists.
  {
    const std::string lists =
        R"([{"name": "q", "kind": "buffer"}, {"name": "batch", "kind": "i64"}],)"
        R"([{"name": "q", "kind": "buffer"}, {"name": "dq", "kind": "buffer"}])";
    Manifest m;
    std::string err;
    std::string text = sharedArgsManifest(lists, {{"k1", 0}});
    bool ok = parseManifest(text, "", false, &m, &err);
    check(ok && m.kernels.size() == 1 && m.kernels[0].args.size() == 2 &&
              m.kernels[0].args[1].name == "batch" &&
              m.kernels[0].args[1].kind == ArgKind::I64,
          "manifest v2: a kernel's args from arg_lists", err);
    err.clear();
    ok = parseManifest(sharedArgsManifest(lists, {{"k1", 2}}), "", false, &m,
                       &err);
    check(!ok && contains(err, "kernels[0]") &&
              contains(err, "field 'args' is 2, but 'arg_lists' has 2 entries"),
          "manifest v2: an index past arg_lists", err);
    err.clear();
    ok = parseManifest(sharedArgsManifest(lists, {{"k1", 1}}), "", false, &m,
                       &err);
    check(!ok && contains(err, "arg 'dq'") &&
              contains(err, "a fwd kernel cannot take it"),
          "manifest v2: a shared list is checked against each kernel", err);
  }
  // The valid template, in memory.
  {
    Manifest m;
    std::string err;
    bool ok = parseManifest(manifestOf(kKernel), "", false, &m, &err);
    check(ok && m.kernels.size() == 1, "manifest: valid template parses", err);
    if (ok) {
      const KernelDesc &k = m.kernels[0];
      check(k.name == "k1" && k.file == "a.ptx" && k.entry == "attn_fwd" &&
                k.kind == KernelKind::Fwd,
            "manifest: name/file/entry/kind");
      check(k.config.dtype == DType::BF16 && k.config.headDim == 128 &&
                k.config.headDimV == 128 && k.config.causal &&
                !k.config.window && !k.config.softcap &&
                k.config.target == "sm_90",
            "manifest: config");
      check(k.block[0] == 128 && k.block[1] == 1 && k.block[2] == 1 &&
                k.dynamicSmem == 36864,
            "manifest: block and dynamic_smem");
      check(k.grid.size() == 3 && k.grid[0].dim == "seqlen_q" &&
                k.grid[0].div == 64 && k.grid[2].dim == "batch",
            "manifest: grid");
      check(k.args.size() == 4 && k.args[0].kind == ArgKind::Buffer &&
                k.args[2].kind == ArgKind::I32 &&
                k.args[3].kind == ArgKind::F32,
            "manifest: args");
    }
  }

  // One broken field at a time: (what to replace, replacement, message).
  struct Case {
    const char *from, *to, *expect;
  } cases[] = {
      {R"("entry": "attn_fwd", )", "", "kernel 'k1' (kernels[0]): missing field 'entry'"},
      {R"("kind": "fwd")", R"("kind": "fwdd")", "unknown kind 'fwdd'"},
      {R"("dtype": "bf16")", R"("dtype": "bf17")", "config: unknown dtype 'bf17'"},
      {R"("head_dim": 128)", R"("head_dim": "128")", "field 'head_dim' must be a number, not a string"},
      {R"("head_dim": 128)", R"("head_dim": 0)", "field 'head_dim' must be >= 1"},
      {R"("head_dim": 128)", R"("head_dim": 12.5)", "field 'head_dim' must be an integer"},
      {R"("causal": true)", R"("causal": 1)", "field 'causal' must be a boolean"},
      {R"("target": "sm_90")", R"("target": "hopper")", "target 'hopper' is not of the form sm_XY"},
      {R"("block": [128, 1, 1])", R"("block": [128, 1])", "field 'block' must have 3 entries"},
      {R"("block": [128, 1, 1])", R"("block": [1024, 2, 1])", "block has 2048 threads"},
      {R"("dynamic_smem": 36864)", R"("dynamic_smem": -1)", "field 'dynamic_smem' must be >= 0"},
      {R"("dynamic_smem": 36864)", R"("dynamic_smem": 4000000)",
       "field 'dynamic_smem' is 4000000 bytes; no target allows more than"},
      {R"({"dim": "seqlen_q", "div": 64})", R"({"dim": "seq", "div": 64})", "grid[0]: unknown dim 'seq'"},
      {R"({"dim": "seqlen_q", "div": 64})", R"({"dim": "seqlen_q", "div": 0})", "grid[0]: field 'div' must be >= 1"},
      {R"({"dim": "seqlen_q", "div": 64})", "[1]", "grid[0] must be an object"},
      {R"({"name": "batch", "kind": "i64"})", R"({"name": "foo", "kind": "i64"})", "arg 'foo': unknown argument name 'foo'"},
      {R"({"name": "q", "kind": "buffer"})", R"({"name": "q", "kind": "i64"})", "arg 'q': has kind 'i64' but the runtime passes it as a buffer"},
      {R"({"name": "scale", "kind": "f32"})", R"({"name": "scale", "kind": "i32"})", "arg 'scale': has kind 'i32' but the runtime passes it as f32"},
      {R"({"name": "batch", "kind": "i64"})", R"({"name": "batch", "kind": "ptr"})", "unknown arg kind 'ptr'"},
      {R"({"name": "q", "kind": "buffer"})", R"({"name": "dq", "kind": "buffer"})", "arg 'dq': is a backward argument"},
      {R"({"name": "q", "kind": "buffer"})", R"({"kind": "buffer"})", "args[0]: missing field 'name'"},
      {R"("config": {)", R"("konfig": {)", "missing field 'config'"},
      {R"("kind": "fwd",)", R"("kind": "fwd", "cubin": 7,)", "\"cubin\" must be a non-empty string"},
      {R"("kind": "fwd",)", R"("kind": "fwd", "cubin": "",)", "\"cubin\" must be a non-empty string"},
      {R"("kind": "fwd",)", R"("kind": "fwd", "cubin": ["a.cubin"],)", "\"cubin\" must be a non-empty string"},
      {R"("kind": "fwd",)", R"("kind": "fwd", "cubin": "a.ptx",)", "\"cubin\" names the PTX file 'a.ptx'"},
  };
  for (const Case &c : cases) {
    Manifest m;
    std::string err;
    bool failed = !parseManifest(manifestOf(replaceOnce(kKernel, c.from, c.to)),
                                 "", false, &m, &err);
    checkMessage(std::string("manifest: ") + c.expect, failed, err,
                 {c.expect});
  }

  // Top-level problems.
  struct Top {
    std::string text;
    const char *expect;
  } tops[] = {
      {replaceOnce(manifestOf(kKernel), "flashmlir-bundle", "other"),
       "format is 'other', expected 'flashmlir-bundle'"},
      {replaceOnce(manifestOf(kKernel), R"("version": 1)", R"("version": 3)"),
       "unsupported version 3 (this runtime reads versions 1 and 2)"},
      {replaceOnce(manifestOf(kKernel), R"("version": 1)", R"("version": 2)"),
       "missing field 'arg_lists'"},
      {replaceOnce(manifestOf(kKernel), R"("version": 1)",
                   R"("version": 2, "arg_lists": [{"name": "q"}])"),
       "arg_lists[0] must be an array"},
      {manifestOf(""), "the bundle has no kernels"},
      {R"({"format": "flashmlir-bundle", "version": 1})",
       "missing field 'kernels'"},
      {"[1]", "the top level must be an object"},
      {manifestOf(std::string(kKernel) + ","), "invalid JSON: line"},
      {manifestOf(std::string(kKernel) + "," + kKernel),
       "kernels[1] and kernels[0] are both named 'k1'"},
      {manifestOf(std::string(kKernel) + "," +
                  replaceOnce(kKernel, R"("name": "k1")", R"("name": "k2")")),
       "kernels 'k1' and 'k2' have the same kind, config and target"},
  };
  for (const Top &t : tops) {
    Manifest m;
    std::string err;
    bool failed = !parseManifest(t.text, "", false, &m, &err);
    checkMessage(std::string("manifest: ") + t.expect, failed, err,
                 {t.expect});
  }
  // "cubin" is optional: absent = PTX only; present = the SASS file.
  {
    Manifest m;
    std::string err;
    bool ok = parseManifest(manifestOf(kKernel), "", false, &m, &err);
    check(ok && m.kernels[0].cubin.empty(), "manifest: no \"cubin\" = PTX only",
          err);
    ok = parseManifest(manifestOf(replaceOnce(kKernel, R"("kind": "fwd",)",
                                              R"("kind": "fwd", "cubin": "a.cubin",)")),
                       "", false, &m, &err);
    check(ok && m.kernels[0].cubin == "a.cubin", "manifest: \"cubin\" parsed",
          err);
  }
  // Same config on another target is fine.
  {
    Manifest m;
    std::string err;
    std::string two =
        std::string(kKernel) + "," +
        replaceOnce(replaceOnce(kKernel, R"("name": "k1")", R"("name": "k2")"),
                    R"("target": "sm_90")", R"("target": "sm_80")");
    check(parseManifest(manifestOf(two), "", false, &m, &err) &&
              m.kernels.size() == 2,
          "manifest: same config on two targets", err);
  }
  // The single "masked" flag (the compiler's form) instead of causal/window.
  {
    std::string k = replaceOnce(kKernel, R"("causal": true,
             "window": false,)", R"("masked": true,)");
    Manifest m;
    std::string err;
    bool ok = parseManifest(manifestOf(k), "", false, &m, &err);
    check(ok && !m.kernels[0].config.causal && m.kernels[0].config.window,
          "manifest: \"masked\": true = causal false, window true", err);
    k = replaceOnce(k, R"("masked": true)", R"("masked": false)");
    ok = parseManifest(manifestOf(k), "", false, &m, &err);
    check(ok && !m.kernels[0].config.causal && !m.kernels[0].config.window,
          "manifest: \"masked\": false = no mask", err);
    k = replaceOnce(k, R"("masked": false,)", "");
    bool failed = !parseManifest(manifestOf(k), "", false, &m, &err);
    checkMessage("manifest: no mask flags at all", failed, err,
                 {"config: missing field 'causal'"});
  }

  // Unknown fields are ignored; a constant grid entry and a missing div.
  {
    Manifest m;
    std::string err;
    std::string k = replaceOnce(kKernel, R"({"dim": "heads", "div": 1})",
                                R"({"dim": "heads"})");
    k = replaceOnce(k, R"({"dim": "batch", "div": 1})", "2");
    k = replaceOnce(k, R"("name": "k1",)", R"("name": "k1", "future": [1],)");
    bool ok = parseManifest(manifestOf(k), "", false, &m, &err);
    check(ok && m.kernels[0].grid[1].div == 1 &&
              m.kernels[0].grid[2].dim.empty() &&
              m.kernels[0].grid[2].constant == 2,
          "manifest: unknown fields ignored, constant grid, default div", err);
  }
}

//===----------------------------------------------------------------------===//
// Bundles on disk and PTX signatures
//===----------------------------------------------------------------------===//

const char *kTinyPtx = R"(//
// Generated by a test
//
.version 8.0
.target sm_80
.address_size 64

	// .globl	attn_fwd
.visible .entry attn_fwd(
	.param .u64 .ptr .global .align 16 attn_fwd_param_0, // q allocated
	.param .u64 attn_fwd_param_1,
	.param .u64 attn_fwd_param_2, /* offset */
	.param .u64 attn_fwd_param_3,
	.param .u64 attn_fwd_param_4,
	.param .u64 attn_fwd_param_5,
	.param .u32 attn_fwd_param_6,
	.param .f32 attn_fwd_param_7
)
{
	ret;
}
.visible .entry attn_fwd_other()
{
	ret;
}
.entry attn_arr(
	.param .align 8 .b8 attn_arr_param_0[24],
	.param .b64 attn_arr_param_1
)
{
	ret;
}
)";

void testBundles() {
  // The checked-in toy bundle.
  {
    Manifest m;
    std::string err;
    bool ok = loadBundle(gInputs + "/toy_bundle", &m, &err);
    check(ok && m.kernels.size() == 4, "bundle: toy bundle loads", err);
    if (ok) {
      check(m.kernels[0].kind == KernelKind::Fwd &&
                m.kernels[1].kind == KernelKind::BwdPre &&
                m.kernels[2].kind == KernelKind::BwdMain &&
                m.kernels[3].kind == KernelKind::BwdPost,
            "bundle: toy kernel kinds");
      check(m.kernels[0].dynamicSmem == 65536,
            "bundle: toy fwd asks for 64 KiB of dynamic shared memory");
    }
  }

  // PTX parameter lists.
  {
    std::vector<int> sizes;
    std::string err;
    bool ok = ptxEntryParams(kTinyPtx, "attn_fwd", &sizes, &err);
    check(ok && sizes == std::vector<int>({8, 8, 8, 8, 8, 8, 4, 4}),
          "ptx: parameter sizes (qualifiers, comments)", err);
    ok = ptxEntryParams(kTinyPtx, "attn_fwd_other", &sizes, &err);
    check(ok && sizes.empty(), "ptx: empty parameter list", err);
    ok = ptxEntryParams(kTinyPtx, "attn_arr", &sizes, &err);
    check(ok && sizes == std::vector<int>({24, 8}),
          "ptx: .b8 array parameters and non-visible entries", err);
    ok = ptxEntryParams(kTinyPtx, "attn", &sizes, &err);
    checkMessage("ptx: entry names match exactly", !ok, err,
                 {"no .entry 'attn'"});
  }

  // The tiny PTX with a matching manifest, then mismatching ones.
  std::string k = replaceOnce(kKernel, R"("dynamic_smem": 36864)",
                              R"("dynamic_smem": 0)");
  {
    std::string dir = makeBundle("tiny_ok", manifestOf(k), {{"a.ptx", kTinyPtx}});
    Manifest m;
    std::string err;
    check(loadBundle(dir, &m, &err) && m.dir == dir,
          "bundle: manifest matches the PTX signature", err);
  }
  struct Case {
    const char *name, *from, *to, *expect;
  } cases[] = {
      {"tiny_count", R"({"name": "batch", "kind": "i64"},)", "",
       "entry 'attn_fwd' has 8 parameters in the PTX but the manifest's args "
       "expand to 7"},
      {"tiny_size", R"({"name": "heads", "kind": "i32"})",
       R"({"name": "heads", "kind": "i64"})",
       "parameter 6 is 4 bytes in the PTX but the manifest passes i64 'heads' "
       "(8 bytes)"},
      {"tiny_entry", R"("entry": "attn_fwd")", R"("entry": "attn_bwd")",
       "no .entry 'attn_bwd'"},
      {"tiny_file", R"("file": "a.ptx")", R"("file": "b.ptx")",
       "file 'b.ptx' not found"},
      {"tiny_cubin", R"("file": "a.ptx")", R"("file": "a.ptx", "cubin": "a.cubin")",
       "cubin 'a.cubin' not found"},
  };
  for (const Case &c : cases) {
    std::string dir = makeBundle(c.name, manifestOf(replaceOnce(k, c.from, c.to)),
                                 {{"a.ptx", kTinyPtx}});
    Manifest m;
    std::string err;
    // Missing files fail the load; signatures fail the full check (the
    // runtime checks each kernel's when it first loads it).
    bool failed = !loadBundle(dir, &m, &err) || !checkBundleSignatures(m, &err);
    checkMessage(std::string("bundle: ") + c.expect, failed, err,
                 {c.expect, "'k1'"});
  }
  // Loading reads no PTX: a signature mismatch loads, and checkKernelPtx
  // (what the runtime runs on a kernel's first use) reports it.
  {
    std::string dir = makeBundle(
        "tiny_lazy",
        manifestOf(replaceOnce(k, R"({"name": "batch", "kind": "i64"},)", "")),
        {{"a.ptx", kTinyPtx}});
    Manifest m;
    std::string err;
    bool loaded = loadBundle(dir, &m, &err);
    check(loaded, "bundle: loading does not read the PTX", err);
    if (loaded) {
      bool failed = !checkKernelPtx(m, m.kernels[0], kTinyPtx, &err);
      checkMessage("bundle: checkKernelPtx reports the mismatch", failed, err,
                   {"kernel 'k1' (a.ptx)", "has 8 parameters in the PTX"});
    }
  }
  {
    std::string dir = makeBundle(
        "tiny_with_cubin",
        manifestOf(replaceOnce(k, R"("file": "a.ptx")",
                               R"("file": "a.ptx", "cubin": "a.cubin")")),
        {{"a.ptx", kTinyPtx}, {"a.cubin", "\x7f" "ELF"}});
    Manifest m;
    std::string err;
    check(loadBundle(dir, &m, &err) && m.kernels[0].cubin == "a.cubin",
          "bundle: a kernel with its cubin loads", err);
  }
  {
    Manifest m;
    std::string err;
    bool failed = !loadBundle(gTmp + "/does-not-exist", &m, &err);
    checkMessage("bundle: missing directory", failed, err,
                 {"cannot open", "manifest.json"});
  }
}

//===----------------------------------------------------------------------===//
// Bundle files stay inside the bundle directory
//===----------------------------------------------------------------------===//

void testBundleConfinement() {
  std::string k = replaceOnce(kKernel, R"("dynamic_smem": 36864)",
                              R"("dynamic_smem": 0)");
  // A file outside every bundle directory that a bad manifest points at.
  writeFile(gTmp + "/secret.ptx", kTinyPtx);
  struct Case {
    const char *name, *file, *cubin, *expect;
  } cases[] = {
      {"esc_dotdot", "../secret.ptx", nullptr, "has a '..' path component"},
      {"esc_deep", "sub/../../secret.ptx", nullptr, "has a '..' path component"},
      {"esc_abs", "/etc/passwd", nullptr, "is an absolute path"},
      {"esc_dot", "./a.ptx", nullptr, "has a '.' path component"},
      {"esc_empty_part", "sub//a.ptx", nullptr, "has a '' path component"},
      {"esc_cubin", "a.ptx", "../secret.ptx", "field 'cubin' ('../secret.ptx')"},
      {"esc_cubin_abs", "a.ptx", "/tmp/x.cubin", "is an absolute path"},
  };
  for (const Case &c : cases) {
    std::string kernel = replaceOnce(
        k, R"("file": "a.ptx")",
        std::string("\"file\": \"") + c.file + "\"" +
            (c.cubin ? std::string(", \"cubin\": \"") + c.cubin + "\"" : ""));
    std::string dir =
        makeBundle(c.name, manifestOf(kernel), {{"a.ptx", kTinyPtx}});
    Manifest m;
    std::string err;
    bool failed = !loadBundle(dir, &m, &err);
    checkMessage(std::string("bundle files: ") + c.file +
                     (c.cubin ? std::string(" + cubin ") + c.cubin : "") +
                     " is refused",
                 failed, err, {c.expect, "'k1'"});
    // The C API says FA_ERR_BUNDLE.
    fa_runtime *rt = nullptr;
    fa_status st = fa_runtime_create(dir.c_str(), &rt);
    check(st == FA_ERR_BUNDLE && rt && contains(fa_runtime_last_error(rt), c.expect),
          std::string("bundle files: fa_runtime_create refuses ") + c.file,
          rt ? fa_runtime_last_error(rt) : "no handle");
    fa_runtime_destroy(rt);
  }
  // Symbolic links: one that leaves the directory is refused (a file, and a
  // subdirectory link), one inside it is followed, and a bundle directory
  // that is itself a link loads.
  {
    std::string dir = makeBundle("esc_link", manifestOf(k));
    int rc = symlink((gTmp + "/secret.ptx").c_str(), (dir + "/a.ptx").c_str());
    Manifest m;
    std::string err;
    bool failed = rc == 0 && !loadBundle(dir, &m, &err);
    checkMessage("bundle files: a symlink out of the bundle is refused", failed,
                 err, {"resolves to", "outside the bundle directory"});
  }
  {
    std::string kernel =
        replaceOnce(k, R"("file": "a.ptx")", R"("file": "sub/a.ptx")");
    std::string dir = makeBundle("esc_dirlink", manifestOf(kernel));
    int rc = symlink(gTmp.c_str(), (dir + "/sub").c_str());
    writeFile(gTmp + "/a.ptx", kTinyPtx);
    Manifest m;
    std::string err;
    bool failed = rc == 0 && !loadBundle(dir, &m, &err);
    checkMessage("bundle files: a directory symlink out of the bundle is refused",
                 failed, err, {"outside the bundle directory"});
  }
  {
    std::string dir = makeBundle("in_link", manifestOf(k), {{"real.ptx", kTinyPtx}});
    int rc = symlink("real.ptx", (dir + "/a.ptx").c_str());
    Manifest m;
    std::string err;
    check(rc == 0 && loadBundle(dir, &m, &err) && checkBundleSignatures(m, &err),
          "bundle files: a symlink inside the bundle is followed", err);
    std::string link = gTmp + "/bundle_link";
    rc = symlink(dir.c_str(), link.c_str());
    check(rc == 0 && loadBundle(link, &m, &err) && checkBundleSignatures(m, &err),
          "bundle files: a bundle directory reached through a symlink loads", err);
  }
  // A file swapped for a link out of the bundle after loading: the read
  // (checkBundleSignatures, what getFunction does) resolves it again.
  {
    std::string dir = makeBundle("esc_late", manifestOf(k), {{"a.ptx", kTinyPtx}});
    Manifest m;
    std::string err;
    bool loaded = loadBundle(dir, &m, &err);
    bool swapped = std::remove((dir + "/a.ptx").c_str()) == 0 &&
                   symlink((gTmp + "/secret.ptx").c_str(), (dir + "/a.ptx").c_str()) == 0;
    bool failed = loaded && swapped && !checkBundleSignatures(m, &err);
    checkMessage("bundle files: a file swapped for a link out after loading is refused",
                 failed, err, {"outside the bundle directory"});
  }
}

//===----------------------------------------------------------------------===//
// Handles used from several threads
//===----------------------------------------------------------------------===//

/// Threads call into one handle while the main thread destroys it: every
/// call either runs (the handle alive) or is refused with FA_ERR_INVALID;
/// none touches freed memory (ASan: test/Sanitizers), and calls after the
/// destroy are refused.
void testHandleThreads() {
  for (int round = 0; round < 20; ++round) {
    fa_runtime *rt = nullptr;
    fa_runtime_create(nullptr, &rt); // no driver here: calls fail cleanly
    if (!rt) {
      check(false, "threads: a runtime handle");
      return;
    }
    std::atomic<bool> go{false};
    std::atomic<int> bad{0}, refused{0}, ran{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        while (!go.load()) {
        }
        for (int i = 0; i < 200; ++i) {
          fa_status st = fa_synchronize(rt);
          (void)fa_workspace_bytes(rt);
          if (st == FA_ERR_INVALID)
            ++refused;
          else if (st == FA_OK || st == FA_ERR_NO_DRIVER || st == FA_ERR_NO_DEVICE ||
                   st == FA_ERR_LAUNCH)
            ++ran;
          else
            ++bad;
        }
      });
    go.store(true);
    std::this_thread::sleep_for(std::chrono::microseconds(50 * round));
    fa_runtime_destroy(rt);
    for (std::thread &t : threads)
      t.join();
    if (round == 0 || round == 19)
      check(bad.load() == 0 && ran.load() + refused.load() == 800,
            "threads: calls racing fa_runtime_destroy run or are refused (round " +
                std::to_string(round) + ": " + std::to_string(ran.load()) +
                " ran, " + std::to_string(refused.load()) + " refused)");
    check(fa_synchronize(rt) == FA_ERR_INVALID &&
              contains(fa_runtime_last_error(rt), "destroyed") &&
              fa_workspace_bytes(rt) == 0,
          "threads: a destroyed handle is refused", fa_runtime_last_error(rt));
    fa_runtime_destroy(rt); // a second destroy is a no-op
  }
}

//===----------------------------------------------------------------------===//
// Problems
//===----------------------------------------------------------------------===//

/// A contiguous [B,H,N,D] tensor at a fake device address.
fa_tensor dense(uint64_t addr, int64_t B, int64_t H, int64_t N, int64_t D) {
  fa_tensor t;
  t.data = reinterpret_cast<void *>(addr);
  int64_t s[4] = {B, H, N, D};
  int64_t st[4] = {H * N * D, N * D, D, 1};
  for (int i = 0; i < 4; ++i) {
    t.sizes[i] = s[i];
    t.strides[i] = st[i];
  }
  return t;
}

/// A [B,H,N,D] view of a [B,N,H,D] buffer.
fa_tensor bshd(uint64_t addr, int64_t B, int64_t H, int64_t N, int64_t D) {
  fa_tensor t = dense(addr, B, H, N, D);
  t.strides[0] = N * H * D;
  t.strides[1] = D;
  t.strides[2] = H * D;
  t.strides[3] = 1;
  return t;
}

fa_tensor lseOf(uint64_t addr, int64_t B, int64_t H, int64_t N) {
  fa_tensor t = dense(addr, B, H, N, 1);
  t.strides[0] = H * N;
  t.strides[1] = N;
  t.strides[2] = 1;
  return t;
}

fa_attn_params paramsOf(fa_dtype dt, int causal = 0, int64_t wl = -1,
                        int64_t wr = -1, float scale = 0, float softcap = 0) {
  fa_attn_params p;
  p.dtype = dt;
  p.causal = causal;
  p.window_left = wl;
  p.window_right = wr;
  p.scale = scale;
  p.softcap = softcap;
  return p;
}

/// Forward tensors of one problem (B=2, Hq=8, Hkv=2, Nq=100, Nk=130,
/// D=64, Dv=32), q in bshd layout.
struct Fwd {
  fa_tensor q = bshd(0x10000, 2, 8, 100, 64);
  fa_tensor k = dense(0x20000, 2, 2, 130, 64);
  fa_tensor v = dense(0x30000, 2, 2, 130, 32);
  fa_tensor o = dense(0x40000, 2, 8, 100, 32);
  fa_tensor lse = lseOf(0x50000, 2, 8, 100);
};

fa_status fwdProblem(Fwd &f, const fa_attn_params &pa, Problem *p,
                     std::string *err, bool withLse = true) {
  return buildForwardProblem(&pa, &f.q, &f.k, &f.v, &f.o,
                             withLse ? &f.lse : nullptr, p, err);
}

int64_t argI(const Problem &p, const char *name) {
  auto it = p.args.find(name);
  return it == p.args.end() ? -999999 : it->second.i;
}

void testProblems() {
  {
    Fwd f;
    Problem p;
    std::string err;
    fa_status st = fwdProblem(f, paramsOf(FA_BF16), &p, &err);
    check(st == FA_OK, "problem: valid forward (GQA, cross, D != Dv, bshd q)",
          err);
    check(p.B == 2 && p.Hq == 8 && p.Hkv == 2 && p.Nq == 100 && p.Nk == 130 &&
              p.D == 64 && p.Dv == 32 && p.dtype == DType::BF16,
          "problem: sizes");
    check(argI(p, "batch") == 2 && argI(p, "heads") == 8 &&
              argI(p, "kv_heads") == 2 && argI(p, "seqlen_q") == 100 &&
              argI(p, "seqlen_k") == 130 && argI(p, "head_dim") == 64 &&
              argI(p, "head_dim_v") == 32,
          "problem: size scalars");
    check(argI(p, "q_stride_b") == 100 * 8 * 64 && argI(p, "q_stride_h") == 64 &&
              argI(p, "q_stride_n") == 8 * 64 &&
              argI(p, "k_stride_h") == 130 * 64 &&
              argI(p, "lse_stride_b") == 800 && argI(p, "lse_stride_h") == 100,
          "problem: stride scalars");
    check(p.args["q"].kind == ArgKind::Buffer && p.args["q"].ptr == 0x10000 &&
              p.args["q"].extent == 2 * 100 * 8 * 64 &&
              p.args["lse"].extent == 2 * 8 * 100,
          "problem: buffer extents");
    check(std::fabs(p.scale - 0.125f) < 1e-7f && p.args["scale"].f == p.scale,
          "problem: scale <= 0 means 1/sqrt(D)");
    check(!p.causal && !p.window && !p.softcap && argI(p, "window_left") == -1 &&
              argI(p, "window_right") == -1 && p.args["softcap"].f == 0,
          "problem: no mask, no softcap");
    check(p.args.count("dq") == 0 && p.args.count("do_stride_b") == 0,
          "problem: forward has no gradient arguments");
  }
  {
    Fwd f;
    Problem p;
    std::string err;
    fwdProblem(f, paramsOf(FA_F16, 1, -1, 7, 0.5f, 30.0f), &p, &err);
    check(p.causal && !p.window && p.softcap && argI(p, "window_right") == 0 &&
              argI(p, "window_left") == -1 && p.scale == 0.5f &&
              p.args["softcap"].f == 30.0f,
          "problem: causal drops the window's right side, passes right = 0");
    fwdProblem(f, paramsOf(FA_F16, 1, 64, -1), &p, &err);
    check(p.causal && p.window && argI(p, "window_left") == 64 &&
              argI(p, "window_right") == 0,
          "problem: causal + left window");
    fwdProblem(f, paramsOf(FA_F16, 0, -5, 16), &p, &err);
    check(!p.causal && p.window && argI(p, "window_left") == -1 &&
              argI(p, "window_right") == 16,
          "problem: negative window sides mean unbounded");
  }
  {
    // Size-1 innermost dims may carry any stride.
    Fwd f;
    f.q = bshd(0x10000, 2, 8, 100, 1);
    f.k = dense(0x20000, 2, 2, 130, 1);
    f.q.strides[3] = 77;
    Problem p;
    std::string err;
    check(fwdProblem(f, paramsOf(FA_F32), &p, &err) == FA_OK,
          "problem: size-1 innermost dim ignores its stride", err);
  }
  {
    // Empty sequences are valid (extent 0, null data allowed).
    Fwd f;
    f.k = dense(0, 2, 2, 0, 64);
    f.v = dense(0, 2, 2, 0, 32);
    Problem p;
    std::string err;
    check(fwdProblem(f, paramsOf(FA_F32), &p, &err) == FA_OK &&
              p.args["k"].extent == 0,
          "problem: Nk = 0 with null k/v", err);
  }

  // Errors, each naming the tensor.
  struct Case {
    const char *name;
    void (*mutate)(Fwd &, fa_attn_params &);
    const char *expect;
  } cases[] = {
      {"heads not a multiple", [](Fwd &f, fa_attn_params &) {
         f.k.sizes[1] = 3; f.v.sizes[1] = 3; },
       "q has 8 heads, not a multiple of the 3 heads of k and v"},
      {"k head dim", [](Fwd &f, fa_attn_params &) { f.k.sizes[3] = 32; },
       "k has sizes [2, 2, 130, 32], expected [2, 2, 130, 64]"},
      {"v seqlen", [](Fwd &f, fa_attn_params &) { f.v.sizes[2] = 129; },
       "v has sizes [2, 2, 129, 32], expected [2, 2, 130, 32]"},
      {"o head dim", [](Fwd &f, fa_attn_params &) { f.o.sizes[3] = 64; },
       "o has sizes [2, 8, 100, 64], expected [2, 8, 100, 32]"},
      {"k batch", [](Fwd &f, fa_attn_params &) { f.k.sizes[0] = 1; },
       "k has sizes [1, 2, 130, 64]"},
      {"lse", [](Fwd &f, fa_attn_params &) { f.lse.sizes[2] = 99; },
       "lse has sizes [2, 8, 99], expected [2, 8, 100]"},
      {"innermost stride", [](Fwd &f, fa_attn_params &) { f.v.strides[3] = 2; },
       "bad strides for v: [8320, 4160, 32, 2] (the innermost stride must be 1)"},
      {"lse innermost stride", [](Fwd &f, fa_attn_params &) { f.lse.strides[2] = 8; },
       "bad strides for lse"},
      {"negative stride", [](Fwd &f, fa_attn_params &) { f.q.strides[2] = -512; },
       "bad strides for q: [51200, 64, -512, 1] (strides must be >= 0)"},
      {"misaligned data", [](Fwd &f, fa_attn_params &) {
         f.q.data = static_cast<char *>(f.q.data) + 2; },
       "q is not 16-byte aligned (data 2 bytes past a 16-byte boundary"},
      {"misaligned rows", [](Fwd &f, fa_attn_params &) {
         f.k.strides[2] = 68; f.k.strides[1] = 68 * 130;
         f.k.strides[0] = 2 * 68 * 130; },
       "k is not 16-byte aligned (data 0 bytes past a 16-byte boundary, "
       "strides [17680, 8840, 68, 1]): rows must start on 16-byte boundaries"},
      {"null data", [](Fwd &f, fa_attn_params &) { f.o.data = nullptr; },
       "o has a null data pointer"},
      {"zero batch", [](Fwd &f, fa_attn_params &) { f.q.sizes[0] = 0; },
       "batch, heads and head dim must be >= 1"},
      {"dtype", [](Fwd &, fa_attn_params &p) { p.dtype = (fa_dtype)7; },
       "unknown dtype 7"},
      {"softcap", [](Fwd &, fa_attn_params &p) { p.softcap = -1; },
       "softcap must be >= 0"},
      {"scale", [](Fwd &, fa_attn_params &p) { p.scale = NAN; },
       "scale is not finite"},
  };
  for (const Case &c : cases) {
    Fwd f;
    fa_attn_params pa = paramsOf(FA_BF16);
    c.mutate(f, pa);
    Problem p;
    std::string err;
    fa_status st = fwdProblem(f, pa, &p, &err);
    checkMessage(std::string("problem: ") + c.name, st == FA_ERR_INVALID, err,
                 {c.expect});
  }
  {
    Fwd f;
    fa_attn_params pa = paramsOf(FA_BF16);
    Problem p;
    std::string err;
    fa_status st = buildForwardProblem(nullptr, &f.q, &f.k, &f.v, &f.o, &f.lse,
                                       &p, &err);
    checkMessage("problem: null params", st == FA_ERR_INVALID, err,
                 {"params is null"});
    st = buildForwardProblem(&pa, &f.q, nullptr, &f.v, &f.o, &f.lse, &p, &err);
    checkMessage("problem: null k", st == FA_ERR_INVALID, err, {"k is null"});
    st = buildForwardProblem(&pa, &f.q, &f.k, &f.v, nullptr, &f.lse, &p, &err);
    checkMessage("problem: null o", st == FA_ERR_INVALID, err, {"o is null"});
  }

  // Backward.
  {
    Fwd f;
    fa_tensor dout = dense(0x60000, 2, 8, 100, 32);
    fa_tensor dq = dense(0x70000, 2, 8, 100, 64);
    fa_tensor dk = dense(0x80000, 2, 2, 130, 64);
    fa_tensor dv = dense(0x90000, 2, 2, 130, 32);
    fa_attn_params pa = paramsOf(FA_BF16, 1);
    Problem p;
    std::string err;
    fa_status st = buildBackwardProblem(&pa, &f.q, &f.k, &f.v, &f.o, &dout,
                                        &f.lse, &dq, &dk, &dv, &p, &err);
    check(st == FA_OK && p.backward && p.args.count("do") &&
              argI(p, "do_stride_h") == 100 * 32 &&
              argI(p, "dk_stride_b") == 2 * 130 * 64 &&
              p.args["dv"].extent == 2 * 2 * 130 * 32,
          "problem: valid backward", err);
    WorkspaceLayout w = workspaceLayout(p);
    // dqacc rows per head: Nq = 100 rounded up to 16.
    check(w.drElems == 2 * 8 * 100 && w.dqaccElems == 2 * 8 * 112 * 64 &&
              w.dqaccOffset == 6400 && w.dqaccOffset % 256 == 0 &&
              w.totalBytes == 6400 + size_t(2 * 8 * 112 * 64) * 4,
          "problem: workspace layout (dr_ws, then dqacc_ws [B,Hq,Nq16,D] "
          "256-aligned)");
    addWorkspaceArgs(&p, 0x1000000);
    check(p.args["dr_ws"].ptr == 0x1000000 &&
              p.args["dr_ws"].extent == 1600 &&
              p.args["dqacc_ws"].ptr == 0x1000000 + 6400 &&
              p.args["dqacc_ws"].extent == 2 * 8 * 112 * 64,
          "problem: workspace arguments");
    // Varlen (a batch-1 view of 100 packed rows in 3 sequences): dr_ws
    // [Hq, Tq], dqacc_ws [Hq, Tq + 15 * 3, D] (abi::varlenDqaccRows).
    {
      Problem pv = p;
      pv.B = 1;
      pv.varlen = true;
      pv.seqs = 3;
      WorkspaceLayout wv = workspaceLayout(pv);
      check(wv.drElems == 8 * 100 && wv.dqaccElems == 8 * (100 + 45) * 64 &&
                flashmlir::abi::varlenDqaccRows(100, 3) == 145,
            "problem: varlen workspace layout (packed dr_ws, dqacc_ws with "
            "15 rows between sequences)");
    }

    dk.sizes[2] = 131;
    st = buildBackwardProblem(&pa, &f.q, &f.k, &f.v, &f.o, &dout, &f.lse, &dq,
                              &dk, &dv, &p, &err);
    checkMessage("problem: backward names dk", st == FA_ERR_INVALID, err,
                 {"dk has sizes [2, 2, 131, 64]"});
    dk.sizes[2] = 130;
    dout.strides[3] = 3;
    st = buildBackwardProblem(&pa, &f.q, &f.k, &f.v, &f.o, &dout, &f.lse, &dq,
                              &dk, &dv, &p, &err);
    checkMessage("problem: backward names do", st == FA_ERR_INVALID, err,
                 {"bad strides for do"});
    dout.strides[3] = 1;
    st = buildBackwardProblem(&pa, &f.q, &f.k, &f.v, &f.o, &dout, nullptr, &dq,
                              &dk, &dv, &p, &err);
    checkMessage("problem: backward needs lse", st == FA_ERR_INVALID, err,
                 {"lse is null"});
  }
}

//===----------------------------------------------------------------------===//
// Selection, grids, packing
//===----------------------------------------------------------------------===//

std::string kernelWith(const char *name, const char *kind, const char *dtype,
                       int d, bool causal, bool window, const char *target,
                       bool softcap = false) {
  std::string k = kKernel;
  k = replaceOnce(k, R"("name": "k1")", std::string("\"name\": \"") + name + "\"");
  k = replaceOnce(k, R"("kind": "fwd")", std::string("\"kind\": \"") + kind + "\"");
  k = replaceOnce(k, R"("dtype": "bf16")", std::string("\"dtype\": \"") + dtype + "\"");
  k = replaceOnce(k, R"("head_dim": 128)", "\"head_dim\": " + std::to_string(d));
  k = replaceOnce(k, R"("head_dim_v": 128)", "\"head_dim_v\": " + std::to_string(d));
  k = replaceOnce(k, R"("causal": true)", causal ? "\"causal\": true" : "\"causal\": false");
  k = replaceOnce(k, R"("window": false)", window ? "\"window\": true" : "\"window\": false");
  k = replaceOnce(k, R"("softcap": false)", softcap ? "\"softcap\": true" : "\"softcap\": false");
  k = replaceOnce(k, R"("target": "sm_90")", std::string("\"target\": \"") + target + "\"");
  return k;
}

/// A forward problem with D = Dv = d.
Problem problemFor(fa_dtype dt, int64_t d, int causal, int64_t wl, int64_t wr,
                   float softcap = 0, int64_t nq = 130) {
  fa_tensor q = dense(0x10000, 2, 4, nq, d), k = dense(0x20000, 2, 2, 256, d),
            v = dense(0x30000, 2, 2, 256, d), o = dense(0x40000, 2, 4, nq, d),
            lse = lseOf(0x50000, 2, 4, nq);
  fa_attn_params pa = paramsOf(dt, causal, wl, wr, 0, softcap);
  Problem p;
  std::string err;
  if (buildForwardProblem(&pa, &q, &k, &v, &o, &lse, &p, &err) != FA_OK)
    std::printf("test bug: %s\n", err.c_str());
  return p;
}

/// The split-KV forward's host side: the split count, the workspace layout
/// and the grid of its kernels (the launches themselves run in testGpu's
/// GPU checks and tools/gpu/h100.sh decode).
void testSplit() {
  // B = 2, Hq = 4, Hkv = 2, Nq = 1, Nk = 256 (2 tiles of 128 keys), d = 128.
  Problem p = problemFor(FA_BF16, 128, 0, -1, -1, 0, /*nq=*/1);
  check(splitKvHeuristic(p, 132) == 2,
        "split: few blocks take one range per 128-key tile",
        std::to_string(splitKvHeuristic(p, 132)));
  Problem big = p;
  big.B = 64;
  big.Hkv = 8;
  check(splitKvHeuristic(big, 132) == 1,
        "split: 512 blocks fill two waves of 132 SMs: no split");
  Problem longCtx = p;
  longCtx.B = 1;
  longCtx.Hkv = 8;
  longCtx.Nk = 131072;
  // 8 blocks on 264 slots, 1024 tiles: the best eligible count is 32 (256
  // blocks, 97% of a wave; 33 would not shorten the longest range).
  check(splitKvHeuristic(longCtx, 132) == 32,
        "split: batch 1, 128k keys, 132 SMs -> 32 ranges",
        std::to_string(splitKvHeuristic(longCtx, 132)));
  Problem batch8 = longCtx;
  batch8.B = 8; // 64 blocks: 4 ranges fill one wave (256 of 264 slots); 103
                // would fill 25 waves exactly at 25x the ranges
  check(splitKvHeuristic(batch8, 132) == 4,
        "split: batch 8, 128k keys, 132 SMs -> 4 ranges (one wave)",
        std::to_string(splitKvHeuristic(batch8, 132)));
  check(splitKvHeuristic(longCtx, 8) == 2,
        "split: 8 blocks on a 8-SM device -> 2 ranges (one full wave)",
        std::to_string(splitKvHeuristic(longCtx, 8)));
  Problem one = longCtx;
  one.Nk = 10;
  check(splitKvHeuristic(one, 132) == 1, "split: one key tile, one range");

  // Workspace: oacc [S, B, Hq, Nq, Dv] then lseacc [S, B, Hq, Nq] at a
  // 256-byte boundary.
  Problem w = p;
  addSplitArgs(&w, 3, 0x100000);
  const ArgValue &o = w.args["oacc_ws"], &l = w.args["lseacc_ws"];
  check(o.kind == ArgKind::Buffer && o.ptr == 0x100000 &&
            o.extent == 3 * 2 * 4 * 1 * 128 && l.ptr == 0x100000 + 12288 &&
            l.extent == 3 * 2 * 4 && w.args["num_splits"].i == 3 &&
            splitWorkspaceBytes(p, 3) == 12288 + 96,
        "split: workspace layout");
  KernelDesc k;
  k.name = "s";
  k.grid = {{"num_splits", 1, 1}, {"kv_heads", 1, 1}, {"batch", 1, 1}};
  unsigned grid[3];
  bool empty = true;
  std::string err;
  check(computeGrid(k, w, grid, &empty, &err) && grid[0] == 3 &&
            grid[1] == 2 && grid[2] == 2 && !empty,
        "split: fwd_split grid = ranges x KV heads x batch", err);
  k.grid = {{"seqlen_q", 4, 1}, {"heads", 1, 1}, {"batch", 1, 1}};
  check(computeGrid(k, w, grid, &empty, &err) && grid[0] == 1 &&
            grid[1] == 4 && grid[2] == 2,
        "split: fwd_combine grid = row groups x heads x batch", err);

  // The kinds parse and select like the others.
  std::string ks =
      kernelWith("s80", "fwd_split", "bf16", 128, false, false, "sm_80") +
      "," +
      kernelWith("c80", "fwd_combine", "bf16", 128, false, false, "sm_80");
  Manifest m;
  bool ok = parseManifest(manifestOf(ks), "/bundles/x", false, &m, &err);
  check(ok && m.kernels.size() == 2 &&
            m.kernels[0].kind == KernelKind::FwdSplit &&
            m.kernels[1].kind == KernelKind::FwdCombine,
        "split: fwd_split / fwd_combine kinds parse", err);
  if (ok) {
    check(selectKernel(m, KernelKind::FwdSplit, p, 9, 0, &err) == 0 &&
              selectKernel(m, KernelKind::FwdCombine, p, 9, 0, &err) == 1 &&
              selectKernel(m, KernelKind::Fwd, p, 9, 0, &err) < 0,
          "split: selected by kind");
  }
}

void testSelection() {
  check(targetsForDevice(9, 0) ==
            std::vector<std::string>({"sm_90a", "sm_90", "sm_80"}),
        "select: targets for cc 9.0");
  check(targetsForDevice(8, 6) == std::vector<std::string>({"sm_86", "sm_80"}),
        "select: targets for cc 8.6");
  check(targetsForDevice(8, 0) == std::vector<std::string>({"sm_80"}),
        "select: targets for cc 8.0");
  check(targetsForDevice(10, 0) ==
            std::vector<std::string>({"sm_100", "sm_80"}),
        "select: targets for cc 10.0");
  check(targetsForDevice(7, 5) == std::vector<std::string>({"sm_75"}),
        "select: cc 7.5 takes its own sm_75 kernels only");
  check(targetsForDevice(7, 0).empty() && targetsForDevice(6, 1).empty(),
        "select: no targets below cc 7.5");
  // FLASHMLIR_GPU_TARGET: one target, where the device can run its PTX.
  setenv("FLASHMLIR_GPU_TARGET", "sm_75", 1);
  check(targetsForDevice(9, 0) == std::vector<std::string>({"sm_75"}) &&
            targetsForDevice(8, 0) == std::vector<std::string>({"sm_75"}) &&
            targetsForDevice(7, 0).empty(),
        "select: FLASHMLIR_GPU_TARGET=sm_75 on 9.0 / 8.0 (not on 7.0)");
  setenv("FLASHMLIR_GPU_TARGET", "sm_90a", 1);
  check(targetsForDevice(9, 0) == std::vector<std::string>({"sm_90a"}) &&
            targetsForDevice(8, 6).empty() && targetsForDevice(10, 0).empty(),
        "select: FLASHMLIR_GPU_TARGET=sm_90a only on 9.0");
  setenv("FLASHMLIR_GPU_TARGET", "sm_99", 1);
  check(targetsForDevice(9, 0).empty(),
        "select: FLASHMLIR_GPU_TARGET of no target selects nothing");
  setenv("FLASHMLIR_GPU_TARGET", "", 1);
  check(targetsForDevice(9, 0).size() == 3,
        "select: an empty FLASHMLIR_GPU_TARGET is unset");
  unsetenv("FLASHMLIR_GPU_TARGET");

  // Which device runs a cubin built for a target: SASS is binary-compatible
  // within a major version, towards newer minors; "a" targets only on their
  // own compute capability.
  struct Runs {
    const char *target;
    int major, minor;
    bool runs;
  } runs[] = {
      {"sm_80", 8, 0, true},   {"sm_80", 8, 6, true},   {"sm_80", 8, 9, true},
      {"sm_86", 8, 0, false},  {"sm_86", 8, 6, true},   {"sm_80", 9, 0, false},
      {"sm_90", 9, 0, true},   {"sm_90a", 9, 0, true},  {"sm_90a", 9, 1, false},
      {"sm_90a", 8, 0, false}, {"sm_80", 10, 0, false}, {"sm_80", 12, 0, false},
      {"sm_100", 10, 0, true}, {"sm_100a", 10, 0, true}, {"sm_100", 10, 3, true},
      {"sm_100a", 10, 3, false}, {"sm_120", 12, 0, true}, {"sm_90", 10, 0, false},
      {"sm_8", 8, 0, false},   {"sm_", 8, 0, false},    {"sm_x0", 8, 0, false},
      {"compute_80", 8, 0, false}, {"sm_80b", 8, 0, false}, {"", 8, 0, false},
  };
  for (const Runs &r : runs)
    check(cubinRunsOn(r.target, r.major, r.minor) == r.runs,
          std::string("cubin: ") + (*r.target ? r.target : "\"\"") +
              (r.runs ? " runs on " : " does not run on ") +
              std::to_string(r.major) + "." + std::to_string(r.minor));

  std::string ks = kernelWith("c90", "fwd", "bf16", 128, true, false, "sm_90") +
                   "," +
                   kernelWith("c80", "fwd", "bf16", 128, true, false, "sm_80") +
                   "," +
                   kernelWith("n80", "fwd", "bf16", 128, false, false, "sm_80") +
                   "," +
                   kernelWith("w80", "fwd", "bf16", 128, false, true, "sm_80") +
                   "," +
                   kernelWith("b90", "bwd_main", "bf16", 128, true, false, "sm_90") +
                   "," +
                   kernelWith("h80", "fwd", "f16", 64, false, false, "sm_80");
  Manifest m;
  std::string err;
  if (!parseManifest(manifestOf(ks), "/bundles/x", false, &m, &err)) {
    check(false, "select: test manifest parses", err);
    return;
  }
  auto pick = [&](KernelKind kind, const Problem &p, int ma, int mi) {
    err.clear();
    int i = selectKernel(m, kind, p, ma, mi, &err);
    return i < 0 ? std::string("<none>") : m.kernels[i].name;
  };
  Problem causal = problemFor(FA_BF16, 128, 1, -1, -1);
  Problem plain = problemFor(FA_BF16, 128, 0, -1, -1);
  check(pick(KernelKind::Fwd, causal, 9, 0) == "c90",
        "select: sm_90 preferred on cc 9.0");
  check(pick(KernelKind::Fwd, causal, 8, 0) == "c80", "select: sm_80 on cc 8.0");
  check(pick(KernelKind::Fwd, causal, 8, 9) == "c80", "select: sm_80 on cc 8.9");
  check(pick(KernelKind::Fwd, plain, 9, 0) == "n80",
        "select: falls back to sm_80 on cc 9.0");
  check(pick(KernelKind::Fwd, causal, 10, 0) == "c80",
        "select: sm_80 on cc 10.0 (sm_90 PTX may be sm_90a)");
  check(pick(KernelKind::BwdMain, causal, 9, 0) == "b90",
        "select: by kind");
  check(pick(KernelKind::Fwd, problemFor(FA_BF16, 128, 0, 32, -1), 9, 0) ==
            "w80",
        "select: window kernel");
  check(pick(KernelKind::Fwd, problemFor(FA_BF16, 128, 1, 32, -1), 9, 0) ==
            "w80",
        "select: causal + window served by a window kernel (right = 0)");
  check(pick(KernelKind::Fwd, problemFor(FA_BF16, 128, 0, -1, 0), 9, 0) ==
            "c90",
        "select: window [-1, 0] served by a causal kernel");
  check(pick(KernelKind::Fwd, problemFor(FA_F16, 64, 0, -1, -1), 8, 0) == "h80",
        "select: by dtype and head dim");

  // Window kernels as the general fallback.
  {
    Manifest wm;
    std::string werr;
    parseManifest(manifestOf(kernelWith("w", "fwd", "bf16", 128, false, true,
                                        "sm_80")),
                  "/b", false, &wm, &werr);
    int a = selectKernel(wm, KernelKind::Fwd, plain, 8, 0, &werr);
    int b = selectKernel(wm, KernelKind::Fwd, causal, 8, 0, &werr);
    check(a == 0 && b == 0,
          "select: a window kernel serves unmasked and causal calls");
  }

  // Bundles in the compiler's "masked" form: an unmasked and a masked kernel.
  {
    std::string un = replaceOnce(
        kernelWith("un", "fwd", "bf16", 128, false, false, "sm_80"),
        R"("causal": false,
             "window": false,)",
        R"("masked": false,)");
    std::string ma = replaceOnce(
        kernelWith("ma", "fwd", "bf16", 128, false, false, "sm_80"),
        R"("causal": false,
             "window": false,)",
        R"("masked": true,)");
    Manifest mm;
    std::string merr;
    bool ok = parseManifest(manifestOf(un + "," + ma), "/b", false, &mm, &merr);
    auto pickM = [&](const Problem &p) {
      int i = selectKernel(mm, KernelKind::Fwd, p, 9, 0, &merr);
      return i < 0 ? std::string("<none>") : mm.kernels[i].name;
    };
    check(ok && pickM(plain) == "un" && pickM(causal) == "ma" &&
              pickM(problemFor(FA_BF16, 128, 0, 16, 16)) == "ma" &&
              pickM(problemFor(FA_BF16, 128, 1, 64, -1)) == "ma",
          "select: \"masked\" kernels serve causal and window calls", merr);
  }

  // Misses and their messages.
  check(pick(KernelKind::Fwd, causal, 7, 5) == "<none>" &&
            contains(err, "on sm_75 (targets tried: sm_75)"),
        "select: cc 7.5 takes sm_75 kernels only (this bundle has none)", err);
  check(pick(KernelKind::Fwd, causal, 7, 0) == "<none>" &&
            contains(err, "devices below sm_75 are not supported"),
        "select: cc 7.0 has no target", err);
  check(pick(KernelKind::Fwd, problemFor(FA_BF16, 64, 1, -1, -1), 9, 0) ==
                "<none>" &&
            contains(err, "no kernel for fwd bf16 head_dim=64 head_dim_v=64 "
                          "causal=true window=false softcap=false on sm_90") &&
            contains(err, "in bundle /bundles/x") &&
            contains(err, "it has no bf16 kernel with head_dim=64, only: "
                          "bf16 head_dim=128, f16 head_dim=64"),
        "select: miss on head dim lists the bundle's dtype/head dims", err);
  check(pick(KernelKind::Fwd, problemFor(FA_BF16, 128, 1, -1, -1, 50.f), 9,
             0) == "<none>" &&
            contains(err, "softcap=true") &&
            contains(err, "it has for bf16 head_dim=128: c90 (fwd "
                          "head_dim_v=128 causal=true window=false "
                          "softcap=false sm_90)") &&
            contains(err, "w80 (fwd"),
        "select: miss on softcap lists the kernels of that dtype/head dim",
        err);
  check(pick(KernelKind::BwdPre, causal, 9, 0) == "<none>" &&
            contains(err, "no kernel for bwd_pre"),
        "select: miss on kind", err);

  // Grids.
  err.clear();
  {
    const KernelDesc &k = m.kernels[0]; // seqlen_q/64, heads, batch
    unsigned g[3];
    bool empty;
    bool ok = computeGrid(k, causal, g, &empty, &err);
    check(ok && !empty && g[0] == 3 && g[1] == 4 && g[2] == 2,
          "grid: ceil(130/64) x heads x batch", err);
    Problem zero = problemFor(FA_BF16, 128, 1, -1, -1, 0, 0);
    ok = computeGrid(k, zero, g, &empty, &err);
    check(ok && empty && g[0] == 0, "grid: seqlen_q = 0 is an empty launch");
    KernelDesc k2 = k;
    k2.grid.resize(1);
    ok = computeGrid(k2, causal, g, &empty, &err);
    check(ok && g[0] == 3 && g[1] == 1 && g[2] == 1,
          "grid: missing dims are 1");
    k2.grid = {GridDimSpec(), GridDimSpec()};
    k2.grid[0].dim = "";
    k2.grid[0].constant = 5;
    k2.grid[1].dim = "seqlen_k";
    k2.grid[1].div = 1;
    Problem big = causal;
    big.args["seqlen_k"].i = 70000;
    ok = computeGrid(k2, big, g, &empty, &err);
    checkMessage("grid: over the y limit", !ok, err,
                 {"grid dimension 1 is 70000, over the limit of 65535"});
    big.args["seqlen_k"].i = 256;
    ok = computeGrid(k2, big, g, &empty, &err);
    check(ok && g[0] == 5 && g[1] == 256, "grid: constants");
  }

  // Packing: buffer = 5 params, i32 / f32 in 8-byte slots.
  err.clear();
  {
    const KernelDesc &k = m.kernels[0]; // q, batch(i64), heads(i32), scale
    PackedArgs a;
    bool ok = packArgs(k, causal, &a, &err);
    check(ok && a.size() == 8, "pack: buffer expands to 5 parameters", err);
    if (ok) {
      check(a.asI64(0) == 0x10000 && a.asI64(1) == 0x10000 && a.asI64(2) == 0 &&
                a.asI64(3) == 2 * 4 * 130 * 128 && a.asI64(4) == 1,
            "pack: allocated, aligned, offset 0, size = extent, stride 1");
      check(a.asI64(5) == 2 && a.asI32(6) == 4 &&
                std::fabs(a.asF32(7) - 1.0f / std::sqrt(128.0f)) < 1e-7f,
            "pack: i64, i32 and f32 values");
      check(a.params[0] == &a.storage[0] && a.params[7] == &a.storage[7],
            "pack: params point at their slots");
    }
    Problem huge = causal;
    huge.args["heads"].i = int64_t(1) << 33;
    ok = packArgs(k, huge, &a, &err);
    checkMessage("pack: i32 overflow is an error", !ok, err,
                 {"argument 'heads' = 8589934592 does not fit its i32"});
    KernelDesc k2 = k;
    k2.args.push_back({"lse", ArgKind::Buffer});
    Fwd f;
    Problem noLse;
    fwdProblem(f, paramsOf(FA_BF16), &noLse, &err, /*withLse=*/false);
    ok = packArgs(k2, noLse, &a, &err);
    checkMessage("pack: a missing value names the argument", !ok, err,
                 {"kernel 'c90' takes argument 'lse', which fa_forward does "
                  "not provide (lse is null)"});
  }
}

//===----------------------------------------------------------------------===//
// The C API without (or with) a driver
//===----------------------------------------------------------------------===//

void testApiErrors() {
  check(std::strcmp(fa_status_name(FA_ERR_NO_DRIVER), "FA_ERR_NO_DRIVER") == 0 &&
            std::strcmp(fa_status_name(FA_OK), "FA_OK") == 0,
        "api: status names");
  check(fa_runtime_create(gInputs.c_str(), nullptr) == FA_ERR_INVALID,
        "api: null out pointer");
  check(fa_runtime_last_error(nullptr) != nullptr &&
            fa_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                       nullptr, nullptr) == FA_ERR_INVALID &&
            fa_workspace_bytes(nullptr) == 0,
        "api: null handle");
  fa_runtime_destroy(nullptr);

  // A bad bundle: FA_ERR_BUNDLE before the driver is even looked at.
  {
    fa_runtime *rt = nullptr;
    std::string dir = makeBundle("api_bad", "{\"format\": 1}");
    fa_status st = fa_runtime_create(dir.c_str(), &rt);
    check(st == FA_ERR_BUNDLE && rt &&
              contains(fa_runtime_last_error(rt), "field 'format' must be a string"),
          "api: bad bundle -> FA_ERR_BUNDLE", rt ? fa_runtime_last_error(rt) : "");
    Fwd f;
    fa_attn_params pa = paramsOf(FA_F32);
    check(fa_forward(rt, &pa, &f.q, &f.k, &f.v, &f.o, &f.lse, nullptr) ==
              FA_ERR_BUNDLE,
          "api: a failed handle keeps failing");
    fa_runtime_destroy(rt);
  }

  // No driver: forced with a library path that does not exist.
  {
    std::string missing = gTmp + "/no/libcuda.so.1";
    CudaDriver d;
    std::string err;
    bool failed = !loadCudaDriver(missing, &d, &err);
    checkMessage("driver: dlopen failure is reported", failed, err,
                 {"cannot load the CUDA driver library", missing.c_str()});

    setenv("FLASHMLIR_LIBCUDA", missing.c_str(), 1);
    fa_runtime *rt = nullptr;
    fa_status st =
        fa_runtime_create((gInputs + "/toy_bundle").c_str(), &rt);
    std::string msg = rt ? fa_runtime_last_error(rt) : "";
    check(st == FA_ERR_NO_DRIVER && rt &&
              contains(msg, "cannot load the CUDA driver library"),
          "api: no libcuda -> FA_ERR_NO_DRIVER with a message", msg);
    void *p = reinterpret_cast<void *>(1);
    int major = -1;
    Fwd f;
    fa_attn_params pa = paramsOf(FA_F32);
    check(fa_malloc(rt, 16, &p) == FA_ERR_NO_DRIVER &&
              fa_device_info(rt, &major, nullptr, nullptr) ==
                  FA_ERR_NO_DRIVER &&
              fa_forward(rt, &pa, &f.q, &f.k, &f.v, &f.o, &f.lse, nullptr) ==
                  FA_ERR_NO_DRIVER &&
              fa_synchronize(rt) == FA_ERR_NO_DRIVER &&
              fa_workspace_bytes(rt) == 0 && major == -1,
          "api: every call on a driverless handle returns FA_ERR_NO_DRIVER");
    fa_runtime_destroy(rt);
    unsetenv("FLASHMLIR_LIBCUDA");
  }
}

//===----------------------------------------------------------------------===//
// On a GPU: the toy bundle end to end
//===----------------------------------------------------------------------===//

struct DeviceBuf {
  fa_runtime *rt;
  void *ptr = nullptr;
  size_t count;
  DeviceBuf(fa_runtime *rt, size_t count) : rt(rt), count(count) {
    fa_malloc(rt, count * 4, &ptr);
  }
  ~DeviceBuf() { fa_free(rt, ptr); }
  void upload(const std::vector<float> &h) {
    fa_memcpy_htod(rt, ptr, h.data(), h.size() * 4);
  }
  std::vector<float> download() {
    std::vector<float> h(count);
    fa_memcpy_dtoh(rt, h.data(), ptr, count * 4);
    return h;
  }
};

std::vector<float> iota(size_t n, float scale, float offset) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = offset + scale * static_cast<float>(i % 1000);
  return v;
}

void testGpu(fa_runtime *rt) {
  int major = 0, minor = 0, sms = 0;
  fa_status st = fa_device_info(rt, &major, &minor, &sms);
  check(st == FA_OK && major > 0 && sms > 0,
        "gpu: device info (cc " + std::to_string(major) + "." +
            std::to_string(minor) + ", " + std::to_string(sms) + " SMs)",
        errIf(st == FA_OK, rt));
  if (major < 8) {
    std::printf("note: toy kernels need sm_80+, skipping GPU launches\n");
    return;
  }
  void *p = nullptr;
  check(fa_malloc(rt, 0, &p) == FA_OK && p == nullptr &&
            fa_free(rt, nullptr) == FA_OK,
        "gpu: zero-byte malloc and null free");

  // B=2, Hq=4, Hkv=2, N=150 (2 blocks of 128), D=Dv=8; q in bshd layout.
  const int64_t B = 2, Hq = 4, Hkv = 2, N = 150, D = 8;
  const size_t nq = B * Hq * N * D, nk = B * Hkv * N * D, nl = B * Hq * N;
  DeviceBuf q(rt, nq), k(rt, nk), v(rt, nk), o(rt, nq), lse(rt, nl),
      dout(rt, nq), dq(rt, nq), dk(rt, nk), dv(rt, nk);
  std::vector<float> hq = iota(nq, 0.01f, -3), hk = iota(nk, 0.02f, 1),
                     hv = iota(nk, -0.03f, 2), hdo = iota(nq, 0.005f, 0.5f);
  q.upload(hq);
  k.upload(hk);
  v.upload(hv);
  dout.upload(hdo);
  auto tq = bshd(reinterpret_cast<uint64_t>(q.ptr), B, Hq, N, D);
  auto tk = dense(reinterpret_cast<uint64_t>(k.ptr), B, Hkv, N, D);
  auto tv = dense(reinterpret_cast<uint64_t>(v.ptr), B, Hkv, N, D);
  auto to = dense(reinterpret_cast<uint64_t>(o.ptr), B, Hq, N, D);
  auto tl = lseOf(reinterpret_cast<uint64_t>(lse.ptr), B, Hq, N);
  auto tdo = dense(reinterpret_cast<uint64_t>(dout.ptr), B, Hq, N, D);
  auto tdq = bshd(reinterpret_cast<uint64_t>(dq.ptr), B, Hq, N, D);
  auto tdk = dense(reinterpret_cast<uint64_t>(dk.ptr), B, Hkv, N, D);
  auto tdv = dense(reinterpret_cast<uint64_t>(dv.ptr), B, Hkv, N, D);
  fa_attn_params pa = paramsOf(FA_F32, 0, -1, -1, 0.5f);

  st = fa_forward(rt, &pa, &tq, &tk, &tv, &to, &tl, nullptr);
  fa_status sync = fa_synchronize(rt);
  check(st == FA_OK && sync == FA_OK,
        "gpu: toy forward launches (64 KiB dynamic smem)",
        errIf(st == FA_OK && sync == FA_OK, rt));
  std::vector<float> ho = o.download(), hl = lse.download();
  double maxErr = 0;
  bool lseOk = true;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < N; ++i) {
        for (int64_t d = 0; d < D; ++d) {
          float qv = hq[((b * N + i) * Hq + h) * D + d]; // bshd
          float vv = hv[((b * Hkv + h / 2) * N + i) * D + d];
          float ov = ho[((b * Hq + h) * N + i) * D + d];
          maxErr = std::fmax(maxErr, std::fabs(ov - (0.5f * qv + vv)));
        }
        lseOk &= hl[(b * Hq + h) * N + i] == float(i) + 0.5f * float(h);
      }
  check(maxErr < 1e-5 && lseOk, "gpu: toy forward results (strided q, GQA)",
        "max error " + std::to_string(maxErr) +
            (lseOk ? "" : ", lse wrong (-1000 = out-of-range access)"));

  // Backward twice: the second run must not accumulate into dqacc.
  for (int run = 0; run < 2; ++run) {
    st = fa_backward(rt, &pa, &tq, &tk, &tv, &to, &tdo, &tl, &tdq, &tdk, &tdv,
                     nullptr);
    sync = fa_synchronize(rt);
    check(st == FA_OK && sync == FA_OK,
          "gpu: toy backward launches (run " + std::to_string(run + 1) + ")",
          errIf(st == FA_OK && sync == FA_OK, rt));
    std::vector<float> hdq = dq.download(), hdk = dk.download(),
                       hdv = dv.download();
    double eq = 0, ek = 0, ev = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < N; ++i) {
          double dr = 0;
          for (int64_t d = 0; d < D; ++d)
            dr += double(hdo[((b * Hq + h) * N + i) * D + d]) *
                  ho[((b * Hq + h) * N + i) * D + d];
          for (int64_t d = 0; d < D; ++d) {
            size_t qi = ((b * N + i) * Hq + h) * D + d; // bshd
            eq = std::fmax(eq, std::fabs(hdq[qi] - (hq[qi] + dr)));
          }
        }
    for (size_t i = 0; i < nk; ++i) {
      ek = std::fmax(ek, std::fabs(hdk[i] - 0.5f * hk[i]));
      ev = std::fmax(ev, std::fabs(hdv[i] - (hv[i] + 1.0f)));
    }
    check(eq < 1e-3 && ek < 1e-6 && ev < 1e-6,
          "gpu: toy backward results (run " + std::to_string(run + 1) +
              ", dqacc zeroed, workspace)",
          "errors dq " + std::to_string(eq) + " dk " + std::to_string(ek) +
              " dv " + std::to_string(ev));
  }
  int64_t ws = fa_workspace_bytes(rt);
  check(ws >= int64_t(nl * 4 + nq * 4) && ws % (2 << 20) == 0,
        "gpu: workspace held (" + std::to_string(ws) + " bytes)");

  // No kernel for this config.
  fa_attn_params half = paramsOf(FA_F16);
  st = fa_forward(rt, &half, &tq, &tk, &tv, &to, &tl, nullptr);
  checkMessage("gpu: no f16 kernel -> FA_ERR_NO_KERNEL",
               st == FA_ERR_NO_KERNEL, fa_runtime_last_error(rt),
               {"no kernel for fwd f16 head_dim=8", "toy_bundle"});
  // Invalid call.
  fa_tensor bad = to;
  bad.strides[3] = 2;
  st = fa_forward(rt, &pa, &tq, &tk, &tv, &bad, &tl, nullptr);
  checkMessage("gpu: bad strides -> FA_ERR_INVALID", st == FA_ERR_INVALID,
               fa_runtime_last_error(rt), {"fa_forward: bad strides for o"});

  // Driver-side failures need bundles of their own.
  std::string toyPtx, toyManifest, err;
  readFile(gInputs + "/toy_bundle/toy.ptx", &toyPtx, &err);
  readFile(gInputs + "/toy_bundle/manifest.json", &toyManifest, &err);
  {
    // Invalid instruction inside toy_fwd's body: the JIT log comes back.
    std::string broken = toyPtx;
    size_t body = broken.find('{', broken.find(".entry toy_fwd"));
    broken.insert(body + 1, "\n\tbogus.instruction %r1;\n");
    std::string dir = makeBundle("gpu_bad_ptx", toyManifest, {{"toy.ptx", broken}});
    fa_runtime *brt = nullptr;
    st = fa_runtime_create(dir.c_str(), &brt);
    check(st == FA_OK, "gpu: a bundle with broken PTX still loads",
          errIf(st == FA_OK, brt));
    st = fa_forward(brt, &pa, &tq, &tk, &tv, &to, &tl, nullptr);
    checkMessage("gpu: rejected PTX -> FA_ERR_PTX with the JIT log",
                 st == FA_ERR_PTX, fa_runtime_last_error(brt),
                 {"kernel 'toy_fwd_f32_d8': the driver rejected", "JIT error log"});
    fa_runtime_destroy(brt);
  }
  {
    // More dynamic shared memory than any target has: the manifest check
    // refuses the bundle when it loads (the launch-time check against the
    // device's opt-in limit is reached only by sizes some other target
    // allows, e.g. 200 KB on an A100).
    std::string m = replaceOnce(toyManifest, "\"dynamic_smem\": 65536",
                                "\"dynamic_smem\": 4000000");
    std::string dir = makeBundle("gpu_big_smem", m, {{"toy.ptx", toyPtx}});
    fa_runtime *brt = nullptr;
    st = fa_runtime_create(dir.c_str(), &brt);
    checkMessage("gpu: too much dynamic smem -> FA_ERR_BUNDLE when it loads",
                 st == FA_ERR_BUNDLE, brt ? fa_runtime_last_error(brt) : "",
                 {"field 'dynamic_smem' is 4000000 bytes"});
    fa_runtime_destroy(brt);
  }
  st = fa_synchronize(rt);
  check(st == FA_OK, "gpu: context still healthy", errIf(st == FA_OK, rt));
}

void testWithDriver() {
  fa_runtime *rt = nullptr;
  fa_status st = fa_runtime_create((gInputs + "/toy_bundle").c_str(), &rt);
  if (st == FA_ERR_NO_DRIVER || st == FA_ERR_NO_DEVICE) {
    check(rt && std::strlen(fa_runtime_last_error(rt)) > 0,
          std::string("api: this machine has no GPU -> ") + fa_status_name(st) +
              " with a message",
          rt ? fa_runtime_last_error(rt) : "");
    std::printf("note: no CUDA device (%s), GPU checks skipped\n",
                rt ? fa_runtime_last_error(rt) : "");
    fa_runtime_destroy(rt);
    return;
  }
  check(st == FA_OK, "api: runtime created on a GPU machine",
        errIf(st == FA_OK, rt));
  if (st == FA_OK)
    testGpu(rt);
  fa_runtime_destroy(rt);
}

} // namespace

int main(int argc, char **argv) {
  if (argc > 1)
    gInputs = argv[1];
  char tmpl[] = "/tmp/fa-runtime-test-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::printf("cannot create a temporary directory\n");
    return 1;
  }
  gTmp = tmpl;

  testJson();
  testManifest();
  testBundles();
  testBundleConfinement();
  testProblems();
  testSelection();
  testSplit();
  testApiErrors();
  testHandleThreads();
  testWithDriver();

  std::string cleanup = "rm -rf '" + gTmp + "'";
  if (std::system(cleanup.c_str()) != 0)
    std::printf("warning: could not remove %s\n", gTmp.c_str());
  std::printf("%d passed, %d failed\n", gPassed, gFailed);
  return gFailed ? 1 : 0;
}
