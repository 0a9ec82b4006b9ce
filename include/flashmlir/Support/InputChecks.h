//===- InputChecks.h - IR text the MLIR 22 parser crashes on -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// MLIR 22's parser crashes on two things found so far: linalg's custom
// `dimensions` / `permutation` lists that are not integers (below), and
// it dereferences a bad type cast on a dense array of `index`
// elements (`array<index: 1, 2>`: Parser::parseDenseArrayAttr calls
// getIntOrFloatBitWidth on IndexType; upstream mlir-opt segfaults too).
// Every place FlashMLIR parses IR text from a user (fa-opt, the C API's
// flashmlir_run_pass_pipeline) runs this check first and reports an error
// instead. Found by tools/fuzz/fa_fuzz.py.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_SUPPORT_INPUTCHECKS_H
#define FLASHMLIR_SUPPORT_INPUTCHECKS_H

#include "llvm/ADT/StringRef.h"

#include <cctype>
#include <string>

namespace flashmlir {

/// linalg's custom forms `linalg.broadcast ... outs(...) dimensions = [..]`,
/// `linalg.transpose ... permutation = [..]` and `linalg.reduce ...
/// dimensions = [..]`: MLIR 22's parser segfaults on any list there that
/// is not integers (a float, a name, a missing bracket, an int64 overflow:
/// the failed parse leaves a null attribute that it then stores). Checked
/// where the keyword follows the ')' of `outs(...)` (in an attribute
/// dictionary it follows '{' or ','). "" when fine or not such a place.
inline std::string checkLinalgDimensionList(llvm::StringRef text, size_t i) {
  llvm::StringRef rest = text.substr(i);
  llvm::StringRef keyword;
  for (llvm::StringRef k : {"dimensions", "permutation"})
    if (rest.starts_with(k))
      keyword = k;
  if (keyword.empty())
    return "";
  auto isIdent = [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' ||
           ch == '.' || ch == '$';
  };
  if (i + keyword.size() < text.size() && isIdent(text[i + keyword.size()]))
    return "";
  size_t p = i;
  while (p > 0 && std::isspace(static_cast<unsigned char>(text[p - 1])))
    --p;
  if (p == 0 || text[p - 1] != ')')
    return "";
  size_t j = i + keyword.size();
  auto skipSpace = [&] {
    while (j < text.size() && std::isspace(static_cast<unsigned char>(text[j])))
      ++j;
  };
  skipSpace();
  if (j >= text.size() || text[j] != '=')
    return "";
  ++j;
  skipSpace();
  std::string bad = "linalg's '" + keyword.str() +
                    " = [...]' must list integers (MLIR's parser cannot "
                    "read anything else there)";
  if (j >= text.size() || text[j] != '[')
    return bad;
  ++j;
  skipSpace();
  if (j < text.size() && text[j] == ']')
    return "";
  for (;;) {
    if (j < text.size() && text[j] == '-')
      ++j;
    size_t digits = 0;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) {
      ++j;
      ++digits;
    }
    // 18 digits always fit an int64.
    if (digits == 0 || digits > 18 || (j < text.size() && isIdent(text[j])))
      return bad;
    skipSpace();
    if (j < text.size() && text[j] == ']')
      return "";
    if (j >= text.size() || text[j] != ',')
      return bad;
    ++j;
    skipSpace();
  }
}

/// "" when `text` has nothing the MLIR parser is known to crash on, else a
/// message "<name>:<line>:<col>: error: ..." (the first occurrence).
inline std::string checkParserHazards(llvm::StringRef text,
                                      llvm::StringRef name = "<input>") {
  size_t line = 1, lineStart = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      lineStart = i + 1;
      continue;
    }
    // Skip comments and string literals.
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
      while (i + 1 < text.size() && text[i + 1] != '\n')
        ++i;
      continue;
    }
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"' && text[i] != '\n'; ++i)
        if (text[i] == '\\')
          ++i;
      if (i < text.size() && text[i] == '\n') {
        ++line;
        lineStart = i + 1;
      }
      continue;
    }
    if (std::string why = checkLinalgDimensionList(text, i); !why.empty())
      return name.str() + ":" + std::to_string(line) + ":" +
             std::to_string(i - lineStart + 1) + ": error: " + why;
    if (c != 'a' || !text.substr(i).starts_with("array") ||
        (i > 0 && (std::isalnum(static_cast<unsigned char>(text[i - 1])) ||
                   text[i - 1] == '_' || text[i - 1] == '.')))
      continue;
    size_t j = i + 5;
    auto skipSpace = [&] {
      while (j < text.size() && (text[j] == ' ' || text[j] == '\t' ||
                                 text[j] == '\n' || text[j] == '\r'))
        ++j;
    };
    skipSpace();
    if (j >= text.size() || text[j] != '<')
      continue;
    ++j;
    skipSpace();
    if (!text.substr(j).starts_with("index"))
      continue;
    j += 5;
    if (j < text.size() &&
        (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_'))
      continue;
    return name.str() + ":" + std::to_string(line) + ":" +
           std::to_string(i - lineStart + 1) +
           ": error: dense arrays of 'index' elements (array<index: ...>) are "
           "not supported (MLIR's parser cannot read them); use i64 elements, "
           "e.g. array<i64: ...>";
  }
  return "";
}

} // namespace flashmlir

#endif // FLASHMLIR_SUPPORT_INPUTCHECKS_H
