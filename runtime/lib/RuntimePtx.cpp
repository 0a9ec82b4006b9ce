//===- RuntimePtx.cpp - Kernel signatures from PTX text -------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// A bundle's manifest and its PTX must agree on every kernel's parameter
// list, or cuLaunchKernel reads garbage. When a bundle is loaded, each
// kernel's `.entry` is found in its PTX and its `.param` sizes compared with
// the manifest's args (a buffer = 5 x 8 bytes, i64 = 8, i32 / f32 = 4). This
// catches compiler/manifest mismatches at fa_runtime_create, without a GPU.
//
//===----------------------------------------------------------------------===//

#include "RuntimeInternal.h"

#include <cctype>
#include <cstdlib>

namespace flashmlir::rt {

namespace {

bool isIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' ||
         c == '%' || c == '.';
}

/// `text` with // and /* */ comments replaced by spaces.
std::string stripComments(const std::string &text) {
  std::string s = text;
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 2, "//") == 0) {
      while (i < s.size() && s[i] != '\n')
        s[i++] = ' ';
    } else if (s.compare(i, 2, "/*") == 0) {
      while (i < s.size() && s.compare(i, 2, "*/") != 0)
        s[i++] = ' ';
      for (int k = 0; k < 2 && i < s.size(); ++k)
        s[i++] = ' ';
    } else if (s[i] == '"') {
      // Skip string literals (e.g. in .file directives).
      ++i;
      while (i < s.size() && s[i] != '"' && s[i] != '\n')
        ++i;
      ++i;
    } else {
      ++i;
    }
  }
  return s;
}

/// Size in bytes of one `.param` declaration (the text between `.param` and
/// the next ',' or ')'), or -1.
int paramSize(const std::string &decl) {
  // Array form: .param .align N .b8 name[K]
  size_t lb = decl.find('[');
  if (lb != std::string::npos)
    return std::atoi(decl.c_str() + lb + 1);
  // Scalar form: the first .{u,s,b,f}{8,16,32,64} token (after optional
  // .ptr / .global / .align N qualifiers).
  size_t i = 0;
  while ((i = decl.find('.', i)) != std::string::npos) {
    size_t j = i + 1;
    while (j < decl.size() && isIdentChar(decl[j]) && decl[j] != '.')
      ++j;
    std::string tok = decl.substr(i + 1, j - i - 1);
    if (tok.size() >= 2 && (tok[0] == 'u' || tok[0] == 's' || tok[0] == 'b' ||
                            tok[0] == 'f')) {
      int bits = std::atoi(tok.c_str() + 1);
      if (bits == 8 || bits == 16 || bits == 32 || bits == 64)
        return bits / 8;
    }
    i = j;
  }
  return -1;
}

} // namespace

bool ptxEntries(const std::string &ptx,
                std::map<std::string, std::vector<int>> *entries,
                std::string *err) {
  std::string s = stripComments(ptx);
  entries->clear();
  size_t pos = 0;
  while ((pos = s.find(".entry", pos)) != std::string::npos) {
    size_t p = pos + 6;
    pos = p;
    if (p >= s.size() || !std::isspace(static_cast<unsigned char>(s[p])))
      continue;
    while (p < s.size() && std::isspace(static_cast<unsigned char>(s[p])))
      ++p;
    size_t nameStart = p;
    while (p < s.size() && isIdentChar(s[p]))
      ++p;
    std::string entry = s.substr(nameStart, p - nameStart);
    while (p < s.size() && std::isspace(static_cast<unsigned char>(s[p])))
      ++p;
    std::vector<int> &sizes = (*entries)[entry];
    sizes.clear();
    if (p >= s.size() || s[p] != '(')
      continue; // no parameter list
    size_t close = s.find(')', p);
    if (close == std::string::npos) {
      *err = ".entry '" + entry + "' has an unterminated parameter list";
      return false;
    }
    pos = close;
    std::string list = s.substr(p + 1, close - p - 1);
    size_t start = 0;
    while (start < list.size()) {
      size_t comma = list.find(',', start);
      if (comma == std::string::npos)
        comma = list.size();
      std::string decl = list.substr(start, comma - start);
      start = comma + 1;
      if (decl.find_first_not_of(" \t\r\n") == std::string::npos)
        continue;
      int size = decl.find(".param") == std::string::npos ? -1 : paramSize(decl);
      if (size <= 0) {
        *err = ".entry '" + entry + "': cannot read parameter " +
               std::to_string(sizes.size());
        return false;
      }
      sizes.push_back(size);
    }
  }
  return true;
}

bool ptxEntryParams(const std::string &ptx, const std::string &entry,
                    std::vector<int> *sizes, std::string *err) {
  std::map<std::string, std::vector<int>> entries;
  if (!ptxEntries(ptx, &entries, err))
    return false;
  auto it = entries.find(entry);
  if (it == entries.end()) {
    *err = "no .entry '" + entry + "'";
    return false;
  }
  *sizes = it->second;
  return true;
}

bool checkKernelSignature(const KernelDesc &k, const std::vector<int> &sizes,
                          std::string *err) {
  struct Param {
    std::string what;
    int size;
  };
  std::vector<Param> expected;
  static const char *const bufferParts[] = {"allocated pointer",
                                            "aligned pointer", "offset",
                                            "size", "stride"};
  for (const KernelArg &a : k.args) {
    if (a.kind == ArgKind::Buffer) {
      for (const char *part : bufferParts)
        expected.push_back({"buffer '" + a.name + "' " + part, 8});
    } else {
      expected.push_back({std::string(argKindName(a.kind)) + " '" + a.name +
                              "'",
                          a.kind == ArgKind::I64 ? 8 : 4});
    }
  }
  if (expected.size() != sizes.size()) {
    *err = "entry '" + k.entry + "' has " + std::to_string(sizes.size()) +
           " parameters in the PTX but the manifest's args expand to " +
           std::to_string(expected.size()) +
           " (a buffer is 5 parameters: allocated pointer, aligned pointer, "
           "offset, size, stride)";
    return false;
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] != expected[i].size) {
      *err = "entry '" + k.entry + "' parameter " + std::to_string(i) +
             " is " + std::to_string(sizes[i]) +
             " bytes in the PTX but the manifest passes " + expected[i].what +
             " (" + std::to_string(expected[i].size) + " bytes) there";
      return false;
    }
  }
  return true;
}

} // namespace flashmlir::rt
