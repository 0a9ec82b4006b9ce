//===- RuntimeTune.cpp - Autotune records of kernel bundles ---------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Candidate groups, output comparison, winner choice and the manifest
// rewrite of fa-tune (RuntimeTune.h). Works on the parsed JSON (JsonValue)
// so that every field the compiler wrote survives the rewrite unchanged.
//
//===----------------------------------------------------------------------===//

#include "RuntimeTune.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

namespace flashmlir::rt {

std::vector<std::pair<std::string, std::vector<int>>>
candidateGroups(const Manifest &m) {
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < m.kernels.size(); ++i) {
    const KernelDesc &k = m.kernels[i];
    if (k.group.empty())
      continue;
    auto [it, fresh] = index.emplace(k.group, groups.size());
    if (fresh)
      groups.push_back({k.group, {}});
    std::vector<int> &members = groups[it->second].second;
    if (k.isDefault)
      members.insert(members.begin(), static_cast<int>(i));
    else
      members.push_back(static_cast<int>(i));
  }
  return groups;
}

double relativeL2(DType dt, const void *x, const void *ref, size_t n) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < n; ++i) {
    double a = loadElem(dt, x, i), b = loadElem(dt, ref, i);
    if (std::isinf(a) && std::isinf(b) && (a > 0) == (b > 0))
      continue;
    if (!std::isfinite(a) || !std::isfinite(b))
      return INFINITY;
    diff += (a - b) * (a - b);
    norm += b * b;
  }
  return std::sqrt(diff) / (norm > 0 ? std::sqrt(norm) : 1.0);
}

double tuneTolerance(DType dt) {
  switch (dt) {
  case DType::F16:
    return 2e-3;
  case DType::BF16:
    return 1.6e-2;
  case DType::F32:
    return 1e-5;
  }
  return 0;
}

int tuneWinner(const TuneGroupResult &r) {
  int best = -1;
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const TuneCandidate &c = r.candidates[i];
    if (c.ok && c.ran &&
        (best < 0 || c.medianMs < r.candidates[best].medianMs))
      best = static_cast<int>(i);
  }
  return best;
}

namespace {

JsonValue jString(const std::string &s) {
  JsonValue v;
  v.kind = JsonValue::Kind::String;
  v.string = s;
  return v;
}

JsonValue jInt(int64_t x) {
  JsonValue v;
  v.kind = JsonValue::Kind::Number;
  v.isInt = true;
  v.integer = x;
  v.number = static_cast<double>(x);
  return v;
}

/// A number rounded to `digits` significant digits (readable records).
JsonValue jReal(double x, int digits) {
  JsonValue v;
  if (!std::isfinite(x))
    return v; // null
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*g", digits, x);
  v.kind = JsonValue::Kind::Number;
  v.number = std::strtod(buf, nullptr);
  return v;
}

JsonValue jBool(bool b) {
  JsonValue v;
  v.kind = JsonValue::Kind::Bool;
  v.boolean = b;
  return v;
}

JsonValue jObject() {
  JsonValue v;
  v.kind = JsonValue::Kind::Object;
  return v;
}

/// Sets member `key` of object `obj` (in place when present, else appended).
void setMember(JsonValue &obj, const std::string &key, JsonValue value) {
  for (auto &member : obj.object)
    if (member.first == key) {
      member.second = std::move(value);
      return;
    }
  obj.object.emplace_back(key, std::move(value));
}

void removeMember(JsonValue &obj, const std::string &key) {
  for (size_t i = 0; i < obj.object.size(); ++i)
    if (obj.object[i].first == key) {
      obj.object.erase(obj.object.begin() + static_cast<long>(i));
      return;
    }
}

std::string stringMember(const JsonValue &obj, const char *key) {
  const JsonValue *v = obj.get(key);
  return v && v->kind == JsonValue::Kind::String ? v->string : "";
}

/// Parses and validates `text` (in memory, files not checked) into both
/// forms.
bool parseBoth(const std::string &text, JsonValue *root, Manifest *m,
               std::string *err) {
  if (!parseManifest(text, "", /*checkFiles=*/false, m, err))
    return false;
  return parseJson(text, root, err);
}

/// Marks `winner` as the selected member of `group` in root's kernels.
void markSelected(JsonValue &root, const std::string &group,
                  const std::string &winner) {
  JsonValue *kernels = nullptr;
  for (auto &member : root.object)
    if (member.first == "kernels")
      kernels = &member.second;
  for (JsonValue &k : kernels->array) {
    if (stringMember(k, "candidate_group") != group)
      continue;
    removeMember(k, "selected");
    if (stringMember(k, "name") == winner)
      setMember(k, "selected", jBool(true));
  }
}

JsonValue recordOf(const TuneGroupResult &r, const std::string &selected,
                   const std::string &defaultName) {
  JsonValue rec = jObject();
  setMember(rec, "device", jString(r.device));
  setMember(rec, "date", jString(r.date));
  JsonValue shape = jObject();
  setMember(shape, "batch", jInt(r.batch));
  setMember(shape, "heads", jInt(r.heads));
  setMember(shape, "seqlen", jInt(r.seqlen));
  setMember(shape, "head_dim", jInt(r.headDim));
  setMember(shape, "causal", jBool(r.causal));
  setMember(rec, "shape", std::move(shape));
  setMember(rec, "reps", jInt(r.reps));
  setMember(rec, "selected", jString(selected));
  double defaultMs = 0, selectedMs = 0;
  JsonValue cands = jObject();
  for (const TuneCandidate &c : r.candidates) {
    JsonValue e = jObject();
    setMember(e, "median_ms", c.ran ? jReal(c.medianMs, 5) : JsonValue());
    setMember(e, "ok", jBool(c.ok));
    if (c.ran)
      setMember(e, "rel_err", jReal(c.relErr, 3));
    if (!c.error.empty())
      setMember(e, "error", jString(c.error));
    setMember(cands, c.kernel, std::move(e));
    if (c.ran && c.kernel == defaultName)
      defaultMs = c.medianMs;
    if (c.ran && c.ok && c.kernel == selected)
      selectedMs = c.medianMs;
  }
  if (defaultMs > 0 && selectedMs > 0)
    setMember(rec, "speedup_vs_default", jReal(defaultMs / selectedMs, 4));
  setMember(rec, "candidates", std::move(cands));
  return rec;
}

} // namespace

bool recordTuneResults(const std::string &manifestText,
                       const std::vector<TuneGroupResult> &results,
                       std::string *out, std::string *err) {
  JsonValue root;
  Manifest m;
  if (!parseBoth(manifestText, &root, &m, err))
    return false;
  std::map<std::string, std::vector<int>> groups;
  for (const auto &g : candidateGroups(m))
    groups.insert(g);
  JsonValue records = root.get("autotune") ? *root.get("autotune") : jObject();
  for (const TuneGroupResult &r : results) {
    auto g = groups.find(r.group);
    if (g == groups.end()) {
      *err = "tune result for '" + r.group +
             "': the bundle has no candidate group of that name";
      return false;
    }
    std::set<std::string> members;
    for (int i : g->second)
      members.insert(m.kernels[i].name);
    for (const TuneCandidate &c : r.candidates)
      if (!members.count(c.kernel)) {
        *err = "tune result for '" + r.group + "': kernel '" + c.kernel +
               "' is not a candidate of the group";
        return false;
      }
    const std::string &defaultName = m.kernels[g->second.front()].name;
    int w = tuneWinner(r);
    std::string winner = w < 0 ? defaultName : r.candidates[w].kernel;
    markSelected(root, r.group, winner);
    setMember(records, r.group, recordOf(r, winner, defaultName));
  }
  setMember(root, "autotune", std::move(records));
  std::string text = writeJson(root);
  Manifest check;
  std::string cerr;
  if (!parseManifest(text, "", false, &check, &cerr)) {
    *err = "the rewritten manifest does not validate: " + cerr;
    return false;
  }
  *out = std::move(text);
  return true;
}

bool manifestSelecting(const std::string &manifestText,
                       const std::string &kernel, std::string *out,
                       std::vector<std::string> *files, std::string *err) {
  JsonValue root;
  Manifest m;
  if (!parseBoth(manifestText, &root, &m, err))
    return false;
  std::string group;
  for (const KernelDesc &k : m.kernels)
    if (k.name == kernel)
      group = k.group;
  if (group.empty()) {
    *err = "kernel '" + kernel + "' is not an autotune candidate";
    return false;
  }
  markSelected(root, group, kernel);
  removeMember(root, "autotune");
  files->clear();
  for (auto &member : root.object) {
    if (member.first != "kernels")
      continue;
    std::vector<JsonValue> kept;
    for (JsonValue &k : member.second.array) {
      if (stringMember(k, "candidate_group") != group)
        continue;
      for (const char *f : {"file", "cubin"})
        if (std::string name = stringMember(k, f); !name.empty())
          files->push_back(name);
      kept.push_back(std::move(k));
    }
    member.second.array = std::move(kept);
  }
  *out = writeJson(root);
  return true;
}

bool writeFileAtomic(const std::string &path, const std::string &text,
                     std::string *err) {
  std::string tmp = path + ".tmp";
  std::FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    *err = "cannot write " + tmp;
    return false;
  }
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok &= std::fflush(f) == 0;
  ok &= std::fclose(f) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    *err = "cannot write " + path + (ok ? " (rename failed)" : "");
    return false;
  }
  return true;
}

} // namespace flashmlir::rt
