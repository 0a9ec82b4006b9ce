//===- RuntimeManifest.cpp - Kernel bundle manifest -----------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Parses and validates DIR/manifest.json, the index of a kernel bundle:
//
//   { "format": "flashmlir-bundle", "version": 1, "kernels": [ {
//       "name", "file", "entry", "kind", "config": { "dtype", "head_dim",
//       "head_dim_v", "causal", "window", "softcap", "target" },
//       (or "masked" instead of "causal" + "window": masked = a kernel that
//       reads window_left/right, the same as causal = false, window = true)
//       "block": [x,y,z], "dynamic_smem", "grid": [{"dim","div"}...],
//       "args": [{"name","kind"}...] (version 1) or an index into the
//       top-level "arg_lists": [[{"name","kind"}...]...] (version 2: a
//       bundle's kernels share a few dozen lists), "resources": {...},
//       (autotune candidates, fa-compile --autotune:) "candidate_group",
//       "variant": {knob: value...}, "default", "selected" } ],
//     "autotune": { GROUP: { "device", "date", "selected", "candidates":
//       { KERNEL: {"median_ms", "ok", ...} }, ... } } }   (written by fa-tune)
//
// Every problem is reported with the kernel (name and index) and the field.
// Unknown fields are ignored (forward compatibility); "resources" is
// informational. Kernels with the same kind and config must be candidates
// of one group, which has exactly one default and at most one selected
// kernel.
//
//===----------------------------------------------------------------------===//

#include "RuntimeInternal.h"

#include "flashmlir/runtime/Limits.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <tuple>

#include <sys/stat.h>
#include <unistd.h>

namespace flashmlir::rt {

bool parseKernelKind(const std::string &s, KernelKind *out) {
  static const KernelKind all[] = {KernelKind::Fwd,      KernelKind::BwdPre,
                                   KernelKind::BwdMain,  KernelKind::BwdPost,
                                   KernelKind::FwdSplit, KernelKind::FwdCombine};
  for (KernelKind k : all) {
    if (s == kernelKindName(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}

const char *argKindName(ArgKind kind) {
  switch (kind) {
  case ArgKind::Buffer:
    return "buffer";
  case ArgKind::I64:
    return "i64";
  case ArgKind::I32:
    return "i32";
  case ArgKind::F32:
    return "f32";
  }
  return "?";
}

bool parseArgKind(const std::string &s, ArgKind *out) {
  static const ArgKind all[] = {ArgKind::Buffer, ArgKind::I64, ArgKind::I32,
                                ArgKind::F32};
  for (ArgKind k : all) {
    if (s == argKindName(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}

namespace {

/// A known argument that only the backward provides (do, dq, dk, dv, the
/// workspaces and their strides): no forward kernel of the ABI takes it.
bool isBackwardOnlyName(const std::string &name) {
  if (name == "head_dim" || name == "head_dim_v")
    return false;
  // The forward's names in every variant (varlen: the offsets too), listed
  // once (asked for every argument of every forward kernel while a
  // manifest loads).
  static const std::vector<abi::Arg> fwdArgs =
      abi::kernelArgs(abi::Kind::Fwd,
                      {false, false, /*varlen=*/true, /*alibi=*/true,
                       /*rotary=*/true});
  for (const abi::Arg &a : fwdArgs)
    if (a.name == name)
      return false;
  return abi::knownArg(name, nullptr);
}

} // namespace

bool knownArgName(const std::string &name, ArgKind *valueClass) {
  abi::ArgClass cls;
  if (!abi::knownArg(name, &cls))
    return false;
  if (valueClass)
    *valueClass = cls == abi::ArgClass::Buffer ? ArgKind::Buffer
                  : cls == abi::ArgClass::F32  ? ArgKind::F32
                                               : ArgKind::I64;
  return true;
}

bool knownGridDimName(const std::string &name) {
  for (const std::string &n : abi::gridDimNames())
    if (name == n)
      return true;
  return false;
}

bool cubinRunsOn(const std::string &target, int ccMajor, int ccMinor) {
  if (target.size() < 5 || target.compare(0, 3, "sm_") != 0)
    return false;
  bool arch = target.back() == 'a';
  std::string digits = target.substr(3, target.size() - 3 - (arch ? 1 : 0));
  if (digits.size() < 2 || digits.find_first_not_of("0123456789") !=
                               std::string::npos)
    return false;
  int major = std::stoi(digits.substr(0, digits.size() - 1));
  int minor = digits.back() - '0';
  return major == ccMajor && (arch ? minor == ccMinor : minor <= ccMinor);
}

std::string joinPath(const std::string &dir, const std::string &file) {
  if (dir.empty() || (!file.empty() && file[0] == '/'))
    return file;
  if (dir.back() == '/')
    return dir + file;
  return dir + "/" + file;
}

std::string checkBundleFileName(const std::string &file) {
  if (file.empty())
    return "is empty";
  if (file.find('\0') != std::string::npos)
    return "contains a NUL byte";
  if (file[0] == '/')
    return "is an absolute path; bundle files are named relative to the "
           "bundle directory";
  size_t start = 0;
  for (;;) {
    size_t slash = file.find('/', start);
    std::string part = file.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..")
      return "has a '" + part +
             "' path component; bundle files are named relative to the "
             "bundle directory, inside it";
    if (slash == std::string::npos)
      return "";
    start = slash + 1;
  }
}

bool resolveBundleFile(const std::string &dir, const std::string &file,
                       std::string *path, std::string *err) {
  if (std::string why = checkBundleFileName(file); !why.empty()) {
    *err = "'" + file + "' " + why;
    return false;
  }
  const std::string joined = joinPath(dir.empty() ? "." : dir, file);
  char *realDir = ::realpath(dir.empty() ? "." : dir.c_str(), nullptr);
  if (!realDir) {
    *err = "cannot resolve the bundle directory " + dir;
    return false;
  }
  std::string root = realDir;
  std::free(realDir);
  char *real = ::realpath(joined.c_str(), nullptr);
  if (!real) {
    *err = "'" + file + "' not found (" + joined + ")";
    return false;
  }
  std::string resolved = real;
  std::free(real);
  if (root != "/")
    root += "/";
  if (resolved.compare(0, root.size(), root) != 0 || resolved == root) {
    *err = "'" + file + "' resolves to " + resolved +
           ", outside the bundle directory " + root;
    return false;
  }
  *path = resolved;
  return true;
}

namespace {
/// resolveBundleFile for the load-time check of every kernel's files, at one
/// system call a file in the common case: a plain name (no '/') that lstat
/// finds to be a regular file lies in the bundle directory itself, whatever
/// that directory resolves to. Anything else (links, subdirectories) takes
/// the full resolution. Readability is checked too.
bool checkBundleFileFast(const std::string &dir, const std::string &file,
                         std::string *path, std::string *err) {
  if (file.find('/') == std::string::npos &&
      checkBundleFileName(file).empty()) {
    std::string joined = joinPath(dir.empty() ? "." : dir, file);
    struct stat st;
    if (::lstat(joined.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(joined.c_str(), R_OK) != 0) {
        *err = "'" + file + "' cannot be opened (" + joined + ")";
        return false;
      }
      *path = joined;
      return true;
    }
  }
  if (!resolveBundleFile(dir, file, path, err))
    return false;
  if (::access(path->c_str(), R_OK) != 0) {
    *err = "'" + file + "' cannot be opened (" + *path + ")";
    return false;
  }
  return true;
}
} // namespace

bool readFile(const std::string &path, std::string *out, std::string *err) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    if (err)
      *err = "cannot open " + path;
    return false;
  }
  std::string data;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    data.append(buf, n);
  bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) {
    if (err)
      *err = "cannot read " + path;
    return false;
  }
  *out = std::move(data);
  return true;
}

namespace {

/// Field accessors that produce "<where>: ..." messages.
class FieldReader {
public:
  FieldReader(const JsonValue &obj, std::string where, std::string *err)
      : obj(obj), where(std::move(where)), err(err) {}

  bool fail(const std::string &msg) {
    *err = where + ": " + msg;
    return false;
  }

  const JsonValue *field(const char *key, JsonValue::Kind kind) {
    const JsonValue *v = obj.get(key);
    if (!v) {
      fail(std::string("missing field '") + key + "'");
      return nullptr;
    }
    if (v->kind != kind) {
      fail(std::string("field '") + key + "' must be a " +
           jsonKindName(kind) + ", not a " + jsonKindName(v->kind));
      return nullptr;
    }
    return v;
  }

  bool str(const char *key, std::string *out) {
    const JsonValue *v = field(key, JsonValue::Kind::String);
    if (!v)
      return false;
    if (v->string.empty())
      return fail(std::string("field '") + key + "' must not be empty");
    *out = v->string;
    return true;
  }

  bool boolean(const char *key, bool *out) {
    const JsonValue *v = field(key, JsonValue::Kind::Bool);
    if (!v)
      return false;
    *out = v->boolean;
    return true;
  }

  bool integer(const char *key, int64_t minValue, int64_t *out) {
    const JsonValue *v = field(key, JsonValue::Kind::Number);
    if (!v)
      return false;
    if (!v->isInt)
      return fail(std::string("field '") + key + "' must be an integer");
    if (v->integer < minValue)
      return fail(std::string("field '") + key + "' must be >= " +
                  std::to_string(minValue) + ", got " +
                  std::to_string(v->integer));
    *out = v->integer;
    return true;
  }

  const JsonValue &obj;
  std::string where;
  std::string *err;
};

bool parseConfig(const JsonValue &v, const std::string &where,
                 KernelConfig *cfg, std::string *err) {
  FieldReader r(v, where + ", config", err);
  std::string dtype;
  if (!r.str("dtype", &dtype))
    return false;
  if (!parseDType(dtype.c_str(), &cfg->dtype))
    return r.fail("unknown dtype '" + dtype + "' (expected f32, f16 or bf16)");
  if (!r.integer("head_dim", 1, &cfg->headDim) ||
      !r.integer("head_dim_v", 1, &cfg->headDimV) ||
      !r.boolean("softcap", &cfg->softcap) || !r.str("target", &cfg->target))
    return false;
  for (const std::string &msg :
       {flashmlir::limits::checkHeadDim("field 'head_dim'", cfg->headDim),
        flashmlir::limits::checkHeadDim("field 'head_dim_v'", cfg->headDimV)})
    if (!msg.empty())
      return r.fail(msg);
  // Mask flags: "causal" + "window", or the single "masked" (a kernel that
  // applies window_left/right at run time, i.e. causal = false, window = true).
  if (v.get("causal") || v.get("window") || !v.get("masked")) {
    if (!r.boolean("causal", &cfg->causal) || !r.boolean("window", &cfg->window))
      return false;
  } else {
    bool masked = false;
    if (!r.boolean("masked", &masked))
      return false;
    cfg->causal = false;
    cfg->window = masked;
  }
  if (v.get("varlen") && !r.boolean("varlen", &cfg->varlen))
    return false;
  if (v.get("alibi") && !r.boolean("alibi", &cfg->alibi))
    return false;
  if (v.get("rotary") && !r.boolean("rotary", &cfg->rotary))
    return false;
  if (cfg->target.compare(0, 3, "sm_") != 0 || cfg->target.size() < 5)
    return r.fail("target '" + cfg->target +
                  "' is not of the form sm_XY (e.g. sm_90, sm_80)");
  return true;
}

/// The autotune fields of a kernel (all absent on ordinary kernels).
bool parseCandidate(const JsonValue &kv, FieldReader &r, KernelDesc *k) {
  static const char *const fields[] = {"candidate_group", "variant", "default",
                                       "selected"};
  if (!kv.get("candidate_group")) {
    for (const char *f : fields)
      if (kv.get(f))
        return r.fail(std::string("field '") + f +
                      "' belongs to an autotune candidate, which needs a "
                      "'candidate_group'");
    return true;
  }
  if (!r.str("candidate_group", &k->group))
    return false;
  const JsonValue *variant = r.field("variant", JsonValue::Kind::Object);
  if (!variant)
    return false;
  if (variant->object.empty())
    return r.fail("field 'variant' must name at least one knob");
  for (const auto &[key, value] : variant->object) {
    std::string text;
    if (value.kind == JsonValue::Kind::Number && value.isInt)
      text = std::to_string(value.integer);
    else if (value.kind == JsonValue::Kind::Bool)
      text = value.boolean ? "true" : "false";
    else if (value.kind == JsonValue::Kind::String && !value.string.empty())
      text = value.string;
    else
      return r.fail("variant knob '" + key +
                    "' must be an integer, a boolean or a non-empty string");
    k->variant += (k->variant.empty() ? "" : " ") + key + "=" + text;
  }
  if (kv.get("default") && !r.boolean("default", &k->isDefault))
    return false;
  if (kv.get("selected") && !r.boolean("selected", &k->selected))
    return false;
  return true;
}

/// The top-level "arg_lists" of a version-2 manifest, each list parsed
/// once per kernel class (forward kinds may not take backward arguments).
struct ArgLists {
  const JsonValue *lists = nullptr;
  std::vector<std::optional<std::vector<KernelArg>>> fwd, other;
};

bool parseKernel(const JsonValue &kv, size_t index, const std::string &dir,
                 bool checkFiles, ArgLists &shared, KernelDesc *k,
                 std::string *err) {
  std::string where = "kernels[" + std::to_string(index) + "]";
  if (kv.kind != JsonValue::Kind::Object) {
    *err = where + ": must be an object";
    return false;
  }
  FieldReader r(kv, where, err);
  if (!r.str("name", &k->name))
    return false;
  where = "kernel '" + k->name + "' (" + where + ")";
  r.where = where;

  std::string kind;
  if (!r.str("file", &k->file) || !r.str("entry", &k->entry) ||
      !r.str("kind", &kind))
    return false;
  if (std::string why = checkBundleFileName(k->file); !why.empty())
    return r.fail("field 'file' ('" + k->file + "') " + why);
  if (const JsonValue *cubin = kv.get("cubin")) {
    if (cubin->kind != JsonValue::Kind::String || cubin->string.empty())
      return r.fail("\"cubin\" must be a non-empty string");
    if (cubin->string == k->file)
      return r.fail("\"cubin\" names the PTX file '" + k->file + "'");
    k->cubin = cubin->string;
    if (std::string why = checkBundleFileName(k->cubin); !why.empty())
      return r.fail("field 'cubin' ('" + k->cubin + "') " + why);
  }
  if (!parseKernelKind(kind, &k->kind))
    return r.fail("unknown kind '" + kind +
                  "' (expected fwd, bwd_pre, bwd_main, bwd_post, fwd_split or "
                  "fwd_combine)");

  const JsonValue *cfg = r.field("config", JsonValue::Kind::Object);
  if (!cfg || !parseConfig(*cfg, where, &k->config, err))
    return false;

  const JsonValue *block = r.field("block", JsonValue::Kind::Array);
  if (!block)
    return false;
  if (block->array.size() != 3)
    return r.fail("field 'block' must have 3 entries");
  int64_t threads = 1;
  for (size_t i = 0; i < 3; ++i) {
    const JsonValue &b = block->array[i];
    if (b.kind != JsonValue::Kind::Number || !b.isInt || b.integer < 1 ||
        b.integer > 1024)
      return r.fail("block[" + std::to_string(i) +
                    "] must be an integer in [1, 1024]");
    k->block[i] = static_cast<unsigned>(b.integer);
    threads *= b.integer;
  }
  if (threads > 1024)
    return r.fail("block has " + std::to_string(threads) +
                  " threads (at most 1024)");

  if (!r.integer("dynamic_smem", 0, &k->dynamicSmem))
    return false;
  if (k->dynamicSmem > flashmlir::limits::maxDynamicSmem())
    return r.fail("field 'dynamic_smem' is " + std::to_string(k->dynamicSmem) +
                  " bytes; no target allows more than " +
                  std::to_string(flashmlir::limits::maxDynamicSmem()));

  const JsonValue *grid = r.field("grid", JsonValue::Kind::Array);
  if (!grid)
    return false;
  if (grid->array.empty() || grid->array.size() > 3)
    return r.fail("field 'grid' must have 1 to 3 entries");
  for (size_t i = 0; i < grid->array.size(); ++i) {
    const JsonValue &g = grid->array[i];
    std::string gw = "grid[" + std::to_string(i) + "]";
    GridDimSpec spec;
    if (g.kind == JsonValue::Kind::Number) {
      if (!g.isInt || g.integer < 1 || g.integer > 0x7fffffff)
        return r.fail(gw + " must be a positive integer or {\"dim\", \"div\"}");
      spec.constant = g.integer;
    } else if (g.kind == JsonValue::Kind::Object) {
      FieldReader gr(g, where + ", " + gw, err);
      if (!gr.str("dim", &spec.dim))
        return false;
      if (!knownGridDimName(spec.dim))
        return gr.fail("unknown dim '" + spec.dim +
                       "' (expected batch, heads, kv_heads, seqlen_q, "
                       "seqlen_k, head_dim or head_dim_v)");
      if (g.get("div")) {
        if (!gr.integer("div", 1, &spec.div))
          return false;
        if (spec.div > 0x7fffffff)
          return gr.fail("field 'div' must be in [1, 2147483647], got " +
                         std::to_string(spec.div));
      }
    } else {
      return r.fail(gw + " must be an object {\"dim\", \"div\"}");
    }
    k->grid.push_back(spec);
  }

  const JsonValue *args = nullptr;
  std::optional<std::vector<KernelArg>> *cached = nullptr;
  if (const JsonValue *a = kv.get("args");
      shared.lists && a && a->kind == JsonValue::Kind::Number) {
    int64_t list = 0;
    if (!r.integer("args", 0, &list))
      return false;
    if (list >= static_cast<int64_t>(shared.lists->array.size()))
      return r.fail("field 'args' is " + std::to_string(list) +
                    ", but 'arg_lists' has " +
                    std::to_string(shared.lists->array.size()) + " entries");
    cached = &(k->kind == KernelKind::Fwd ? shared.fwd : shared.other)[list];
    if (*cached) {
      k->args = **cached;
      args = nullptr;
    } else {
      args = &shared.lists->array[list];
    }
  } else {
    args = r.field("args", JsonValue::Kind::Array);
    if (!args)
      return false;
  }
  for (size_t i = 0; args && i < args->array.size(); ++i) {
    const JsonValue &a = args->array[i];
    // Messages (built only on failure: a bundle has ~30 arguments a kernel).
    auto argsWhere = [&] { return where + ", args[" + std::to_string(i) + "]"; };
    if (a.kind != JsonValue::Kind::Object) {
      *err = argsWhere() + ": must be an object {\"name\", \"kind\"}";
      return false;
    }
    KernelArg arg;
    std::string akind;
    const JsonValue *nameV = a.get("name"), *kindV = a.get("kind");
    bool plain = nameV && nameV->kind == JsonValue::Kind::String &&
                 !nameV->string.empty() && kindV &&
                 kindV->kind == JsonValue::Kind::String &&
                 !kindV->string.empty();
    if (plain) {
      arg.name = nameV->string;
      akind = kindV->string;
    } else {
      FieldReader ar(a, argsWhere(), err);
      if (!ar.str("name", &arg.name) || !ar.str("kind", &akind))
        return false;
    }
    struct {
      const std::string &where, &name;
      std::string *err;
      bool fail(const std::string &what) const {
        *err = where + ", arg '" + name + "': " + what;
        return false;
      }
    } ar{where, arg.name, err};
    if (!parseArgKind(akind, &arg.kind))
      return ar.fail("unknown arg kind '" + akind +
                     "' (expected buffer, i64, i32 or f32)");
    ArgKind cls;
    if (!knownArgName(arg.name, &cls))
      return ar.fail("unknown argument name '" + arg.name +
                     "': the runtime provides no value for it");
    bool ok = cls == ArgKind::Buffer ? arg.kind == ArgKind::Buffer
              : cls == ArgKind::F32  ? arg.kind == ArgKind::F32
                                     : (arg.kind == ArgKind::I64 ||
                                       arg.kind == ArgKind::I32);
    if (!ok)
      return ar.fail(std::string("has kind '") + argKindName(arg.kind) +
                     "' but the runtime passes it as " +
                     (cls == ArgKind::Buffer ? "a buffer"
                      : cls == ArgKind::F32  ? "f32"
                                             : "an integer (i64 or i32)"));
    if (k->kind == KernelKind::Fwd && isBackwardOnlyName(arg.name))
      return ar.fail("is a backward argument; a fwd kernel cannot take it");
    k->args.push_back(arg);
  }
  if (cached && args)
    *cached = k->args;

  if (!parseCandidate(kv, r, k))
    return false;

  if (checkFiles) {
    // Inside the bundle directory (symbolic links resolved), and readable.
    std::string path, perr;
    if (!checkBundleFileFast(dir, k->file, &path, &perr))
      return r.fail("file " + perr);
    // A cubin the manifest names must be there (and inside the bundle): a
    // bundle that lost it (a packaging glob that missed *.cubin) would
    // otherwise fall back to the PTX JIT without a word, seconds per kernel.
    if (!k->cubin.empty()) {
      if (!checkBundleFileFast(dir, k->cubin, &path, &perr))
        return r.fail("cubin " + perr);
    }
  }
  return true;
}

/// Group-level rules: exactly one default, at most one selected, distinct
/// variants.
bool checkGroups(const Manifest &m, const std::string &name,
                 std::string *err) {
  std::map<std::string, std::vector<const KernelDesc *>> groups;
  for (const KernelDesc &k : m.kernels)
    if (!k.group.empty())
      groups[k.group].push_back(&k);
  for (const auto &[group, members] : groups) {
    std::string where = name + ": candidate group '" + group + "'";
    std::vector<std::string> defaults, selected;
    std::map<std::string, std::string> variants;
    for (const KernelDesc *k : members) {
      if (k->isDefault)
        defaults.push_back("'" + k->name + "'");
      if (k->selected)
        selected.push_back("'" + k->name + "'");
      auto [it, fresh] = variants.emplace(k->variant, k->name);
      if (!fresh) {
        *err = where + ": kernels '" + it->second + "' and '" + k->name +
               "' have the same variant (" + k->variant + ")";
        return false;
      }
    }
    auto list = [](const std::vector<std::string> &v) {
      std::string s;
      for (const std::string &x : v)
        s += (s.empty() ? "" : ", ") + x;
      return s;
    };
    if (defaults.size() != 1) {
      *err = where + (defaults.empty()
                          ? std::string(" has no default kernel (one member "
                                        "needs \"default\": true)")
                          : " has " + std::to_string(defaults.size()) +
                                " default kernels (" + list(defaults) +
                                "); exactly one is allowed");
      return false;
    }
    if (selected.size() > 1) {
      *err = where + " has " + std::to_string(selected.size()) +
             " selected kernels (" + list(selected) + "); at most one is allowed";
      return false;
    }
  }
  return true;
}

/// The top-level "autotune" records (fa-tune): one per tuned group.
bool checkAutotune(const JsonValue &root, const Manifest &m,
                   const std::string &name, std::string *err) {
  const JsonValue *a = root.get("autotune");
  if (!a)
    return true;
  if (a->kind != JsonValue::Kind::Object) {
    *err = name + ": field 'autotune' must be an object, not a " +
           jsonKindName(a->kind);
    return false;
  }
  for (const auto &[group, rec] : a->object) {
    std::string where = name + ": autotune record '" + group + "'";
    std::map<std::string, const KernelDesc *> members;
    for (const KernelDesc &k : m.kernels)
      if (k.group == group)
        members[k.name] = &k;
    if (members.empty()) {
      *err = where + ": the bundle has no candidate group of that name";
      return false;
    }
    if (rec.kind != JsonValue::Kind::Object) {
      *err = where + ": must be an object";
      return false;
    }
    std::string ferr, device, date, selected;
    FieldReader r(rec, where, &ferr);
    const JsonValue *cands = nullptr;
    if (!r.str("device", &device) || !r.str("date", &date) ||
        !r.str("selected", &selected) ||
        !(cands = r.field("candidates", JsonValue::Kind::Object))) {
      *err = ferr;
      return false;
    }
    auto sel = members.find(selected);
    if (sel == members.end()) {
      *err = where + ": selected kernel '" + selected +
             "' is not a candidate of the group";
      return false;
    }
    if (!sel->second->selected) {
      *err = where + ": names '" + selected +
             "' as selected, but that kernel is not marked \"selected\": true";
      return false;
    }
    for (const auto &[kernel, c] : cands->object) {
      std::string cw = where + ", candidate '" + kernel + "'";
      if (!members.count(kernel)) {
        *err = cw + ": not a kernel of the group";
        return false;
      }
      if (c.kind != JsonValue::Kind::Object) {
        *err = cw + ": must be an object";
        return false;
      }
      FieldReader cr(c, cw, &ferr);
      bool ok = false;
      if (!cr.boolean("ok", &ok)) {
        *err = ferr;
        return false;
      }
      const JsonValue *ms = c.get("median_ms");
      if (ms && ms->kind != JsonValue::Kind::Null &&
          (ms->kind != JsonValue::Kind::Number || ms->number < 0)) {
        *err = cw + ": field 'median_ms' must be a number >= 0 or null";
        return false;
      }
    }
  }
  return true;
}

} // namespace

bool parseManifest(const std::string &text, const std::string &dir,
                   bool checkFiles, Manifest *out, std::string *err) {
  std::string name = dir.empty() ? std::string("manifest.json")
                                 : joinPath(dir, "manifest.json");
  JsonValue root;
  std::string jerr;
  if (!parseJson(text, &root, &jerr)) {
    *err = name + ": invalid JSON: " + jerr;
    return false;
  }
  if (root.kind != JsonValue::Kind::Object) {
    *err = name + ": the top level must be an object";
    return false;
  }
  std::string ferr;
  FieldReader r(root, name, &ferr);
  std::string format;
  int64_t version = 0;
  if (!r.str("format", &format) || !r.integer("version", 0, &version)) {
    *err = ferr;
    return false;
  }
  if (format != "flashmlir-bundle") {
    *err = name + ": format is '" + format + "', expected 'flashmlir-bundle'";
    return false;
  }
  if (version != 1 && version != 2) {
    *err = name + ": unsupported version " + std::to_string(version) +
           " (this runtime reads versions 1 and 2)";
    return false;
  }
  ArgLists shared;
  if (version == 2) {
    shared.lists = r.field("arg_lists", JsonValue::Kind::Array);
    if (!shared.lists) {
      *err = ferr;
      return false;
    }
    for (size_t i = 0; i < shared.lists->array.size(); ++i)
      if (shared.lists->array[i].kind != JsonValue::Kind::Array) {
        *err = name + ": arg_lists[" + std::to_string(i) +
               "] must be an array of {\"name\", \"kind\"}";
        return false;
      }
    shared.fwd.resize(shared.lists->array.size());
    shared.other.resize(shared.lists->array.size());
  }
  const JsonValue *kernels = r.field("kernels", JsonValue::Kind::Array);
  if (!kernels) {
    *err = ferr;
    return false;
  }
  if (kernels->array.empty()) {
    *err = name + ": the bundle has no kernels";
    return false;
  }

  Manifest m;
  m.dir = dir;
  std::map<std::string, size_t> names;
  using Key = std::tuple<int, int, int64_t, int64_t, bool, bool, bool,
                         std::string, bool, bool, bool>;
  std::map<Key, size_t> keys;
  std::map<std::string, std::pair<Key, size_t>> groupKeys;
  for (size_t i = 0; i < kernels->array.size(); ++i) {
    KernelDesc k;
    std::string kerr;
    if (!parseKernel(kernels->array[i], i, dir, checkFiles, shared, &k,
                     &kerr)) {
      *err = name + ": " + kerr;
      return false;
    }
    auto [it, fresh] = names.emplace(k.name, i);
    if (!fresh) {
      *err = name + ": kernels[" + std::to_string(i) + "] and kernels[" +
             std::to_string(it->second) + "] are both named '" + k.name + "'";
      return false;
    }
    const KernelConfig &c = k.config;
    Key key{static_cast<int>(k.kind), static_cast<int>(c.dtype), c.headDim,
            c.headDimV, c.causal, c.window, c.softcap, c.target, c.varlen,
            c.alibi, c.rotary};
    auto [kit, kfresh] = keys.emplace(key, i);
    const KernelDesc &first = kfresh ? k : m.kernels[kit->second];
    if (!kfresh && (k.group.empty() || k.group != first.group)) {
      *err = name + ": kernels '" + first.name + "' and '" + k.name +
             "' have the same kind, config and target" +
             (k.group.empty() && first.group.empty()
                  ? ""
                  : " but are not candidates of one group");
      return false;
    }
    // Every candidate of a group serves the same calls.
    if (!k.group.empty()) {
      auto [git, gfresh] = groupKeys.emplace(k.group, std::make_pair(key, i));
      if (!gfresh && git->second.first != key) {
        *err = name + ": candidate group '" + k.group + "': kernels '" +
               m.kernels[git->second.second].name + "' and '" + k.name +
               "' differ in kind, config or target";
        return false;
      }
    }
    m.kernels.push_back(std::move(k));
  }
  if (!checkGroups(m, name, err) || !checkAutotune(root, m, name, err))
    return false;
  *out = std::move(m);
  return true;
}

bool loadBundle(const std::string &dir, Manifest *out, std::string *err) {
  std::string path = joinPath(dir, "manifest.json");
  std::string text, rerr;
  if (!readFile(path, &text, &rerr)) {
    *err = "bundle " + dir + ": " + rerr;
    return false;
  }
  Manifest m;
  if (!parseManifest(text, dir, /*checkFiles=*/true, &m, err))
    return false;
  *out = std::move(m);
  return true;
}

bool checkKernelPtx(const Manifest &m, const KernelDesc &k,
                    const std::string &ptx, std::string *err) {
  std::string where =
      "bundle " + m.dir + ": kernel '" + k.name + "' (" + k.file + "): ";
  std::vector<int> sizes;
  std::string serr;
  if (!ptxEntryParams(ptx, k.entry, &sizes, &serr) ||
      !checkKernelSignature(k, sizes, &serr)) {
    *err = where + serr;
    return false;
  }
  return true;
}

bool checkBundleSignatures(const Manifest &m, std::string *err) {
  // file -> entry -> parameter sizes; each PTX file is read and scanned once.
  std::map<std::string, std::map<std::string, std::vector<int>>> files;
  for (const KernelDesc &k : m.kernels) {
    std::string where = "bundle " + m.dir + ": kernel '" + k.name + "' (" +
                        k.file + "): ";
    auto it = files.find(k.file);
    if (it == files.end()) {
      std::string text, rerr, path;
      std::map<std::string, std::vector<int>> entries;
      if (!resolveBundleFile(m.dir, k.file, &path, &rerr) ||
          !readFile(path, &text, &rerr) ||
          !ptxEntries(text, &entries, &rerr)) {
        *err = where + rerr;
        return false;
      }
      it = files.emplace(k.file, std::move(entries)).first;
    }
    auto e = it->second.find(k.entry);
    if (e == it->second.end()) {
      *err = where + "no .entry '" + k.entry + "'";
      return false;
    }
    std::string serr;
    if (!checkKernelSignature(k, e->second, &serr)) {
      *err = where + serr;
      return false;
    }
  }
  return true;
}

} // namespace flashmlir::rt
