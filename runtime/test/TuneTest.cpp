//===- TuneTest.cpp - Self-checks for autotune bundles --------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Standalone test (no framework, no GPU) of what autotune bundles add to the
// runtime: the manifest's candidate fields and "autotune" records and their
// error messages, kernel selection among candidates (selected, else
// default), the JSON writer, and fa-tune's GPU-free half (RuntimeTune.h):
// output comparison, winner choice, the manifest rewrite from measured
// times, one-candidate manifests and atomic writes.
//
// Usage: fa-tune-test. Prints one line per check and a final
// "N passed, M failed"; exits 1 on any failure.
//
//===----------------------------------------------------------------------===//

#include "RuntimeTune.h"

#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace flashmlir::rt;

namespace {

int gPassed = 0, gFailed = 0;
std::string gTmp;

void check(bool ok, const std::string &name, const std::string &detail = "") {
  if (ok)
    ++gPassed;
  else
    ++gFailed;
  // The detail (often a whole manifest) only when the check fails.
  bool show = !ok && !detail.empty();
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(),
              show ? ": " : "", show ? detail.c_str() : "");
}

bool contains(const std::string &s, const std::string &sub) {
  return s.find(sub) != std::string::npos;
}

void checkMessage(const std::string &name, bool failed, const std::string &err,
                  const std::string &expect) {
  check(failed && contains(err, expect), name,
        failed ? err : "unexpectedly succeeded");
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

//===----------------------------------------------------------------------===//
// An autotune bundle in memory: a group of three forward candidates (bf16,
// d128, masked, sm_90), an ordinary bwd_main kernel, and an ordinary forward
// kernel for f16.
//===----------------------------------------------------------------------===//

/// A kernel of the template; `extra` is appended to its members.
std::string kernel(const std::string &name, const char *kind,
                   const char *dtype, int block, const std::string &extra) {
  return R"({"name": ")" + name + R"(", "file": ")" + name +
         R"(.ptx", "entry": "attn_fwd", "kind": ")" + kind +
         R"(", "config": {"dtype": ")" + dtype +
         R"(", "head_dim": 128, "head_dim_v": 128, "masked": true,
              "softcap": false, "target": "sm_90", "tensor_cores": true},
  "block": [)" + std::to_string(block) +
         R"(, 1, 1], "dynamic_smem": 69632,
  "grid": [{"dim": "seqlen_q", "div": )" + std::to_string(block) +
         R"(}, {"dim": "heads", "div": 1}, {"dim": "batch", "div": 1}],
  "args": [{"name": "q", "kind": "buffer"}, {"name": "scale", "kind": "f32"}],
  "resources": {"registers": 255, "spill_store_bytes": 0}, "block_m": 128)" +
         extra + "}";
}

const char *kGroup = "fwd_bf16_d128_dv128_masked_sm_90";

std::string candidate(const std::string &suffix, int warps, int blockN,
                      bool isDefault, const std::string &more = "") {
  return kernel(std::string(kGroup) + suffix, "fwd", "bf16", warps * 32,
                R"(, "candidate_group": ")" + std::string(kGroup) +
                    R"(", "variant": {"mma_warps": )" + std::to_string(warps) +
                    R"(, "mma_warp_rows": 32, "mma_block_n": )" +
                    std::to_string(blockN) +
                    R"(, "mma_async_copy": true}, "default": )" +
                    (isDefault ? "true" : "false") + more);
}

std::string manifestOf(const std::string &kernels,
                       const std::string &top = "") {
  return R"({"format": "flashmlir-bundle", "version": 1, "kernels": [)" +
         kernels + "]" + top + "}";
}

/// The untuned bundle; `extraDefault` / `extraW8` go into those kernels.
std::string bundle(const std::string &extraDefault = "",
                   const std::string &extraW8 = "",
                   const std::string &top = "") {
  // A candidate first: selection must not depend on the order.
  return manifestOf(candidate("_w8r32n64", 8, 64, false, extraW8) + ",\n" +
                        candidate("", 4, 64, true, extraDefault) + ",\n" +
                        candidate("_w4r32n32", 4, 32, false) + ",\n" +
                        kernel("bwd_main_bf16", "bwd_main", "bf16", 256, "") +
                        ",\n" + kernel("fwd_f16", "fwd", "f16", 128, ""),
                    top);
}

Problem problem(DType dt, bool causal) {
  Problem p;
  p.dtype = dt;
  p.D = p.Dv = 128;
  p.causal = causal;
  p.windowRight = causal ? 0 : -1;
  return p;
}

std::string pick(const std::string &text, DType dt = DType::BF16,
                 KernelKind kind = KernelKind::Fwd) {
  Manifest m;
  std::string err;
  if (!parseManifest(text, "", false, &m, &err))
    return "<parse error: " + err + ">";
  int i = selectKernel(m, kind, problem(dt, true), 9, 0, &err);
  return i < 0 ? "<none>" : m.kernels[i].name;
}

//===----------------------------------------------------------------------===//
// Manifest fields and their errors
//===----------------------------------------------------------------------===//

void testManifest() {
  Manifest m;
  std::string err;
  bool ok = parseManifest(bundle(), "", false, &m, &err);
  check(ok && m.kernels.size() == 5, "manifest: an autotune bundle parses",
        err);
  if (ok) {
    const KernelDesc &w8 = m.kernels[0], &def = m.kernels[1];
    check(w8.group == kGroup && !w8.isDefault && !w8.selected &&
              def.group == kGroup && def.isDefault,
          "manifest: candidate_group and default");
    check(w8.variant == "mma_warps=8 mma_warp_rows=32 mma_block_n=64 "
                        "mma_async_copy=true",
          "manifest: variant as key=value text", w8.variant);
    check(m.kernels[3].group.empty() && m.kernels[4].group.empty(),
          "manifest: ordinary kernels are in no group");
    auto groups = candidateGroups(m);
    check(groups.size() == 1 && groups[0].first == kGroup &&
              groups[0].second == std::vector<int>({1, 0, 2}),
          "tune: candidateGroups lists the default first");
  }

  std::string def = std::string(kGroup);
  struct Case {
    std::string text;
    const char *expect;
  } cases[] = {
      {manifestOf(kernel("k", "fwd", "bf16", 128, R"(, "default": true)")),
       "kernel 'k' (kernels[0]): field 'default' belongs to an autotune "
       "candidate, which needs a 'candidate_group'"},
      {manifestOf(kernel("k", "fwd", "bf16", 128, R"(, "variant": {"a": 1})")),
       "field 'variant' belongs to an autotune candidate"},
      {manifestOf(kernel("k", "fwd", "bf16", 128,
                         R"(, "candidate_group": "g", "default": true)")),
       "kernel 'k' (kernels[0]): missing field 'variant'"},
      {manifestOf(kernel("k", "fwd", "bf16", 128,
                         R"(, "candidate_group": "", "variant": {"a": 1})")),
       "field 'candidate_group' must not be empty"},
      {manifestOf(kernel("k", "fwd", "bf16", 128,
                         R"(, "candidate_group": "g", "variant": {})")),
       "field 'variant' must name at least one knob"},
      {manifestOf(kernel("k", "fwd", "bf16", 128,
                         R"(, "candidate_group": "g", "variant": {"a": 1.5})")),
       "variant knob 'a' must be an integer, a boolean or a non-empty string"},
      {manifestOf(kernel("k", "fwd", "bf16", 128,
                         R"(, "candidate_group": "g", "variant": {"a": 1}, "default": 1)")),
       "field 'default' must be a boolean, not a number"},
      {manifestOf(kernel("k", "fwd", "bf16", 128,
                         R"(, "candidate_group": "g", "variant": {"a": 1}, "default": true, "selected": "yes")")),
       "field 'selected' must be a boolean, not a string"},
  };
  for (const Case &c : cases) {
    Manifest mm;
    std::string e;
    bool failed = !parseManifest(c.text, "", false, &mm, &e);
    checkMessage(std::string("manifest: ") + c.expect, failed, e, c.expect);
  }

  // Group-level rules.
  std::string w8 = candidate("_w8r32n64", 8, 64, false);
  std::string d = candidate("", 4, 64, true);
  struct Group {
    std::string kernels;
    const char *expect;
  } groups[] = {
      {w8 + "," + candidate("", 4, 64, false),
       "candidate group 'fwd_bf16_d128_dv128_masked_sm_90' has no default "
       "kernel"},
      {d + "," + candidate("_w8r32n64", 8, 64, true),
       "has 2 default kernels ('fwd_bf16_d128_dv128_masked_sm_90', "
       "'fwd_bf16_d128_dv128_masked_sm_90_w8r32n64'); exactly one is allowed"},
      {d + "," + candidate("_w8r32n64", 8, 64, false, R"(, "selected": true)") +
           "," + candidate("_w4r32n32", 4, 32, false, R"(, "selected": true)"),
       "has 2 selected kernels"},
      {d + "," + candidate("_again", 4, 64, false),
       "kernels 'fwd_bf16_d128_dv128_masked_sm_90' and "
       "'fwd_bf16_d128_dv128_masked_sm_90_again' have the same variant "
       "(mma_warps=4"},
      {d + "," + kernel("plain", "fwd", "bf16", 128, ""),
       "kernels 'fwd_bf16_d128_dv128_masked_sm_90' and 'plain' have the same "
       "kind, config and target but are not candidates of one group"},
      {kernel("plain", "fwd", "bf16", 128, "") + "," + d,
       "kernels 'plain' and 'fwd_bf16_d128_dv128_masked_sm_90' have the same "
       "kind, config and target but are not candidates of one group"},
      {d + "," +
           replaceOnce(candidate("_w8r32n64", 8, 64, true),
                       R"("candidate_group": "fwd_bf16_d128_dv128_masked_sm_90")",
                       R"("candidate_group": "other")"),
       "but are not candidates of one group"},
      {d + "," +
           replaceOnce(candidate("_w8r32n64", 8, 64, false), R"("dtype": "bf16")",
                       R"("dtype": "f16")"),
       "candidate group 'fwd_bf16_d128_dv128_masked_sm_90': kernels "
       "'fwd_bf16_d128_dv128_masked_sm_90' and "
       "'fwd_bf16_d128_dv128_masked_sm_90_w8r32n64' differ in kind, config or "
       "target"},
      {d + "," +
           replaceOnce(candidate("_w8r32n64", 8, 64, false), R"("kind": "fwd")",
                       R"("kind": "bwd_main")"),
       "differ in kind, config or target"},
  };
  for (const Group &g : groups) {
    Manifest mm;
    std::string e;
    bool failed = !parseManifest(manifestOf(g.kernels), "", false, &mm, &e);
    checkMessage(std::string("manifest: ") + g.expect, failed, e, g.expect);
  }

  // "autotune" records.
  std::string sel = R"(, "selected": true)";
  std::string rec =
      R"({"device": "GPU", "date": "2026-11-24T00:00:00Z", "selected": ")" +
      def + R"(", "candidates": {")" + def +
      R"(": {"median_ms": 1.5, "ok": true}}})";
  {
    Manifest mm;
    std::string e;
    bool good = parseManifest(
        bundle(sel, "", R"(, "autotune": {")" + def + R"(": )" + rec + "}"),
        "", false, &mm, &e);
    check(good && mm.kernels[1].selected,
          "manifest: a tuned bundle with its autotune record parses", e);
  }
  struct Rec {
    std::string extraDefault, top;
    const char *expect;
  } recs[] = {
      {sel, R"(, "autotune": [])", "field 'autotune' must be an object, not a array"},
      {sel, R"(, "autotune": {"nope": )" + rec + "}",
       "autotune record 'nope': the bundle has no candidate group of that name"},
      {sel, R"(, "autotune": {")" + def + R"(": 3})", "must be an object"},
      {sel,
       R"(, "autotune": {")" + def + R"(": )" +
           replaceOnce(rec, R"("device": "GPU", )", "") + "}",
       "autotune record 'fwd_bf16_d128_dv128_masked_sm_90': missing field "
       "'device'"},
      {sel,
       R"(, "autotune": {")" + def + R"(": )" +
           replaceOnce(rec, R"("selected": ")" + def, R"("selected": "fwd_f16)") +
           "}",
       "selected kernel 'fwd_f16' is not a candidate of the group"},
      {"",
       R"(, "autotune": {")" + def + R"(": )" + rec + "}",
       "names 'fwd_bf16_d128_dv128_masked_sm_90' as selected, but that kernel "
       "is not marked \"selected\": true"},
      {sel,
       R"(, "autotune": {")" + def + R"(": )" +
           replaceOnce(rec, R"("candidates": {")" + def,
                       R"("candidates": {"bwd_main_bf16)") +
           "}",
       "candidate 'bwd_main_bf16': not a kernel of the group"},
      {sel,
       R"(, "autotune": {")" + def + R"(": )" +
           replaceOnce(rec, R"("median_ms": 1.5)", R"("median_ms": -1)") + "}",
       "field 'median_ms' must be a number >= 0 or null"},
      {sel,
       R"(, "autotune": {")" + def + R"(": )" +
           replaceOnce(rec, R"(, "ok": true)", "") + "}",
       "missing field 'ok'"},
  };
  for (const Rec &r : recs) {
    Manifest mm;
    std::string e;
    bool failed =
        !parseManifest(bundle(r.extraDefault, "", r.top), "", false, &mm, &e);
    checkMessage(std::string("manifest: ") + r.expect, failed, e, r.expect);
  }
}

//===----------------------------------------------------------------------===//
// Selection
//===----------------------------------------------------------------------===//

void testSelection() {
  check(pick(bundle()) == kGroup,
        "select: an untuned group launches its default (listed second)");
  check(pick(bundle("", R"(, "selected": true)")) ==
            std::string(kGroup) + "_w8r32n64",
        "select: a selected candidate wins over the default");
  check(pick(bundle(R"(, "selected": true)")) == kGroup,
        "select: a selected default");
  check(pick(bundle(), DType::F16) == "fwd_f16",
        "select: ordinary kernels beside a group are unchanged");
  check(pick(bundle("", R"(, "selected": true)"), DType::BF16,
             KernelKind::BwdMain) == "bwd_main_bf16",
        "select: other kinds of the config are unchanged");
  // An unmasked call is served by the masked group too (window kernel).
  Manifest m;
  std::string err;
  parseManifest(bundle("", R"(, "selected": true)"), "", false, &m, &err);
  int i = selectKernel(m, KernelKind::Fwd, problem(DType::BF16, false), 9, 0,
                       &err);
  check(i == 0, "select: the selected candidate also serves unmasked calls");
}

//===----------------------------------------------------------------------===//
// JSON writer
//===----------------------------------------------------------------------===//

bool sameJson(const JsonValue &a, const JsonValue &b) {
  if (a.kind != b.kind)
    return false;
  switch (a.kind) {
  case JsonValue::Kind::Null:
    return true;
  case JsonValue::Kind::Bool:
    return a.boolean == b.boolean;
  case JsonValue::Kind::Number:
    return a.isInt == b.isInt && a.number == b.number &&
           (!a.isInt || a.integer == b.integer);
  case JsonValue::Kind::String:
    return a.string == b.string;
  case JsonValue::Kind::Array:
    if (a.array.size() != b.array.size())
      return false;
    for (size_t i = 0; i < a.array.size(); ++i)
      if (!sameJson(a.array[i], b.array[i]))
        return false;
    return true;
  case JsonValue::Kind::Object:
    if (a.object.size() != b.object.size())
      return false;
    for (size_t i = 0; i < a.object.size(); ++i)
      if (a.object[i].first != b.object[i].first ||
          !sameJson(a.object[i].second, b.object[i].second))
        return false;
    return true;
  }
  return false;
}

void testJsonWriter() {
  const char *text =
      R"({"a": [1, -2, 3.5, 1e3, 0.1, 123456789012345678, true, false, null],
          "s": "q\"b\\s/\n\t\u0001\u00e9", "o": {"k": {}, "e": []}, "z": -0.0})";
  JsonValue v, back;
  std::string err;
  bool ok = parseJson(text, &v, &err);
  std::string out = writeJson(v);
  ok = ok && parseJson(out, &back, &err);
  check(ok && sameJson(v, back), "json: writeJson reads back equal", err + out);
  check(contains(out, "\"a\": [\n    1,\n    -2,\n    3.5,\n    1000.0"),
        "json: 2-space indentation; fractions stay fractions", out);
  check(contains(out, R"("q\"b\\s/\n\t\u0001)"), "json: string escapes", out);
  JsonValue again;
  parseJson(writeJson(back), &again, &err);
  check(writeJson(again) == out, "json: writing is stable");
}

//===----------------------------------------------------------------------===//
// fa-tune's decisions and the manifest rewrite
//===----------------------------------------------------------------------===//

void testCompare() {
  std::vector<uint16_t> a(100), b(100);
  for (int i = 0; i < 100; ++i)
    a[i] = b[i] = floatToBF16(0.01f * (i - 50));
  check(relativeL2(DType::BF16, a.data(), b.data(), 100) == 0,
        "compare: identical outputs -> 0");
  b[3] = floatToBF16(1.0f);
  double e = relativeL2(DType::BF16, a.data(), b.data(), 100);
  check(e > 0.1 && e < 10, "compare: a changed element is seen",
        std::to_string(e));
  a[7] = 0xffff; // NaN
  check(std::isinf(relativeL2(DType::BF16, a.data(), b.data(), 100)),
        "compare: NaN in the candidate -> inf");
  float l1[3] = {-INFINITY, 1.0f, 2.0f}, l2[3] = {-INFINITY, 1.0f, 2.0f};
  check(relativeL2(DType::F32, l1, l2, 3) == 0,
        "compare: lse = -inf rows agree");
  l1[0] = 0;
  check(std::isinf(relativeL2(DType::F32, l1, l2, 3)),
        "compare: a finite row where the default has -inf -> inf");
  check(tuneTolerance(DType::F16) == 2e-3 && tuneTolerance(DType::BF16) == 1.6e-2,
        "compare: tolerances of the float64 checks");
}

TuneCandidate cand(const std::string &suffix, bool ok, double ms,
                   bool ran = true) {
  TuneCandidate c;
  c.kernel = std::string(kGroup) + suffix;
  c.ran = ran;
  c.ok = ok;
  c.medianMs = ms;
  c.relErr = ok ? 1e-3 : 0.5;
  if (!ok)
    c.error = "disagrees with the default";
  return c;
}

TuneGroupResult resultOf(std::vector<TuneCandidate> cands) {
  TuneGroupResult r;
  r.group = kGroup;
  r.device = "NVIDIA H100 80GB HBM3 (cc 9.0, 132 SMs)";
  r.date = "2026-11-24T12:00:00Z";
  r.batch = 4;
  r.heads = 16;
  r.seqlen = 4096;
  r.headDim = 128;
  r.causal = true;
  r.reps = 20;
  r.candidates = std::move(cands);
  return r;
}

std::string selectedOf(const std::string &text) {
  Manifest m;
  std::string err, names;
  if (!parseManifest(text, "", false, &m, &err))
    return "<parse error: " + err + ">";
  for (const KernelDesc &k : m.kernels)
    if (k.selected)
      names += (names.empty() ? "" : ",") + k.name;
  return names;
}

void testRecord() {
  TuneGroupResult r = resultOf({cand("", true, 2.0), cand("_w8r32n64", true, 1.5),
                                cand("_w4r32n32", false, 1.0)});
  check(tuneWinner(r) == 1, "winner: the fastest candidate that is ok");
  check(tuneWinner(resultOf({cand("", false, 2.0), cand("_w8r32n64", false, 1.0)})) ==
            -1,
        "winner: none when no candidate is ok");
  check(tuneWinner(resultOf({cand("", true, 2.0), cand("_w8r32n64", true, 0, false)})) ==
            0,
        "winner: a candidate that did not run is never chosen");

  std::string out, err;
  bool ok = recordTuneResults(bundle(), {r}, &out, &err);
  check(ok, "record: rewrite succeeds", err);
  std::string w8 = std::string(kGroup) + "_w8r32n64";
  check(selectedOf(out) == w8, "record: the winner (only) is selected",
        selectedOf(out));
  check(pick(out) == w8, "record: the runtime now launches the winner");
  JsonValue root;
  parseJson(out, &root, &err);
  const JsonValue *rec =
      root.get("autotune") ? root.get("autotune")->get(kGroup) : nullptr;
  check(rec && rec->get("device") &&
            rec->get("device")->string == r.device && rec->get("date") &&
            rec->get("selected") && rec->get("selected")->string == w8 &&
            rec->get("shape") && rec->get("shape")->get("seqlen") &&
            rec->get("shape")->get("seqlen")->integer == 4096 &&
            rec->get("reps") && rec->get("reps")->integer == 20,
        "record: device, date, shape, reps and selected", out);
  const JsonValue *cands = rec ? rec->get("candidates") : nullptr;
  const JsonValue *bad =
      cands ? cands->get(std::string(kGroup) + "_w4r32n32") : nullptr;
  check(cands && cands->object.size() == 3 && cands->get(w8) &&
            cands->get(w8)->get("median_ms") &&
            cands->get(w8)->get("median_ms")->number == 1.5 && bad &&
            bad->get("ok") && !bad->get("ok")->boolean && bad->get("error"),
        "record: median ms, ok and error per candidate");
  check(rec && rec->get("speedup_vs_default") &&
            std::fabs(rec->get("speedup_vs_default")->number - 2.0 / 1.5) <
                1e-3,
        "record: speedup of the winner over the default");
  // Everything the compiler wrote survives.
  JsonValue orig;
  parseJson(bundle(), &orig, &err);
  const JsonValue &k0 = root.get("kernels")->array[0];
  check(k0.get("resources") && k0.get("resources")->get("registers") &&
            k0.get("resources")->get("registers")->integer == 255 &&
            k0.get("block_m") && root.get("kernels")->array.size() == 5 &&
            sameJson(root.get("kernels")->array[4], orig.get("kernels")->array[4]),
        "record: other fields and kernels are unchanged");

  // Tuning again replaces the record and the selection.
  std::string again;
  ok = recordTuneResults(out,
                         {resultOf({cand("", true, 1.0), cand("_w8r32n64", true, 1.5)})},
                         &again, &err);
  JsonValue root2;
  parseJson(again, &root2, &err);
  check(ok && selectedOf(again) == kGroup &&
            root2.get("autotune")->object.size() == 1 &&
            root2.get("autotune")->get(kGroup)->get("candidates")->object.size() == 2,
        "record: re-tuning replaces the selection and the record", err);

  // No candidate ok: the default is kept (and marked).
  ok = recordTuneResults(
      bundle(), {resultOf({cand("", false, 1.0), cand("_w8r32n64", false, 0.5)})},
      &out, &err);
  check(ok && selectedOf(out) == kGroup && pick(out) == kGroup,
        "record: with no candidate ok the default stays", err);

  // Errors.
  TuneGroupResult other = r;
  other.group = "nope";
  checkMessage("record: an unknown group",
               !recordTuneResults(bundle(), {other}, &out, &err), err,
               "tune result for 'nope': the bundle has no candidate group of "
               "that name");
  TuneGroupResult foreign = r;
  foreign.candidates.push_back(cand("", true, 1.0));
  foreign.candidates.back().kernel = "fwd_f16";
  checkMessage("record: a kernel outside the group",
               !recordTuneResults(bundle(), {foreign}, &out, &err), err,
               "kernel 'fwd_f16' is not a candidate of the group");
  checkMessage("record: an invalid manifest",
               !recordTuneResults("{}", {r}, &out, &err), err,
               "missing field 'format'");
}

void testSelecting() {
  std::string out, err;
  std::string w4 = std::string(kGroup) + "_w4r32n32";
  std::string tuned;
  recordTuneResults(bundle(), {resultOf({cand("", true, 2.0), cand("_w8r32n64", true, 1.5)})},
                    &tuned, &err);
  std::vector<std::string> files;
  bool ok = manifestSelecting(tuned, w4, &out, &files, &err);
  check(ok && selectedOf(out) == w4 && pick(out) == w4,
        "one-candidate manifest: selects the candidate", err);
  JsonValue root;
  parseJson(out, &root, &err);
  check(!root.get("autotune"), "one-candidate manifest: records dropped");
  const std::vector<JsonValue> &ks = root.get("kernels")->array;
  bool onlyGroup = !ks.empty();
  for (const JsonValue &k : ks)
    onlyGroup &= k.get("candidate_group") &&
                 k.get("candidate_group")->string == kGroup;
  check(onlyGroup, "one-candidate manifest: only the candidate's group");
  const JsonValue &k0 = ks[0];
  check(k0.get("file")->string == std::string(kGroup) + "_w8r32n64.ptx" &&
            files.size() == ks.size() && files[0] == k0.get("file")->string,
        "one-candidate manifest: files stay relative and are listed",
        k0.get("file")->string);
  checkMessage("one-candidate manifest: not a candidate",
               !manifestSelecting(bundle(), "fwd_f16", &out, &files, &err),
               err, "kernel 'fwd_f16' is not an autotune candidate");
}

void testAtomicWrite() {
  std::string path = gTmp + "/manifest.json", err, back;
  bool ok = writeFileAtomic(path, "one", &err) &&
            writeFileAtomic(path, "two", &err) && readFile(path, &back, &err);
  check(ok && back == "two" && access((path + ".tmp").c_str(), F_OK) != 0,
        "atomic write: replaces the file, leaves no temporary", err);
  checkMessage("atomic write: a missing directory",
               !writeFileAtomic(gTmp + "/no/such/dir/m.json", "x", &err), err,
               "cannot write " + gTmp + "/no/such/dir/m.json.tmp");
}

} // namespace

int main() {
  char tmpl[] = "/tmp/fa-tune-test-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::printf("cannot create a temporary directory\n");
    return 1;
  }
  gTmp = tmpl;
  testManifest();
  testSelection();
  testJsonWriter();
  testCompare();
  testRecord();
  testSelecting();
  testAtomicWrite();
  std::string cleanup = "rm -rf '" + gTmp + "'";
  if (std::system(cleanup.c_str()) != 0)
    std::printf("warning: could not remove %s\n", gTmp.c_str());
  std::printf("%d passed, %d failed\n", gPassed, gFailed);
  return gFailed ? 1 : 0;
}
