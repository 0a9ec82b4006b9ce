//===- RuntimeJson.cpp - A small strict JSON parser -----------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Enough JSON for bundle manifests: strict RFC 8259, UTF-8 in strings, \u
// escapes (surrogate pairs included) decoded to UTF-8, integers kept exact
// when they fit an int64. Nesting is limited to keep the recursion bounded.
//
//===----------------------------------------------------------------------===//

#include "RuntimeInternal.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace flashmlir::rt {

const JsonValue *JsonValue::get(const std::string &key) const {
  if (kind != Kind::Object)
    return nullptr;
  for (const auto &member : object)
    if (member.first == key)
      return &member.second;
  return nullptr;
}

const char *jsonKindName(JsonValue::Kind kind) {
  switch (kind) {
  case JsonValue::Kind::Null:
    return "null";
  case JsonValue::Kind::Bool:
    return "boolean";
  case JsonValue::Kind::Number:
    return "number";
  case JsonValue::Kind::String:
    return "string";
  case JsonValue::Kind::Array:
    return "array";
  case JsonValue::Kind::Object:
    return "object";
  }
  return "?";
}

namespace {

constexpr int kMaxDepth = 64;

class Parser {
public:
  explicit Parser(const std::string &text) : s(text) {}

  bool parseDocument(JsonValue *out) {
    *out = JsonValue();
    skipSpace();
    if (!parseValue(out, 0))
      return false;
    skipSpace();
    if (pos != s.size())
      return fail("unexpected text after the JSON value");
    return true;
  }

  std::string error;

private:
  const std::string &s;
  size_t pos = 0;

  bool fail(const std::string &what) {
    if (!error.empty())
      return false;
    // Line and column (1-based, columns in bytes) of `pos`.
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < s.size(); ++i) {
      if (s[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    error = "line " + std::to_string(line) + ", column " +
            std::to_string(col) + ": " + what;
    return false;
  }

  void skipSpace() {
    while (pos < s.size() &&
           (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' ||
            s[pos] == '\r'))
      ++pos;
  }

  bool literal(const char *word) {
    size_t n = std::strlen(word);
    if (s.compare(pos, n, word) != 0)
      return false;
    pos += n;
    return true;
  }

  bool parseValue(JsonValue *out, int depth) {
    if (depth > kMaxDepth)
      return fail("nesting deeper than " + std::to_string(kMaxDepth));
    if (pos >= s.size())
      return fail("unexpected end of input, expected a value");
    char c = s[pos];
    switch (c) { // *out is a fresh (null) value
    case '{':
      return parseObject(out, depth);
    case '[':
      return parseArray(out, depth);
    case '"':
      out->kind = JsonValue::Kind::String;
      return parseString(&out->string);
    case 't':
    case 'f':
    case 'n':
      if (literal("true")) {
        out->kind = JsonValue::Kind::Bool;
        out->boolean = true;
        return true;
      }
      if (literal("false")) {
        out->kind = JsonValue::Kind::Bool;
        return true;
      }
      if (literal("null"))
        return true;
      return fail("invalid literal");
    default:
      if (c == '-' || (c >= '0' && c <= '9'))
        return parseNumber(out);
      return fail(std::string("unexpected character '") + c + "'");
    }
  }

  bool parseObject(JsonValue *out, int depth) {
    out->kind = JsonValue::Kind::Object;
    ++pos; // '{'
    skipSpace();
    if (pos < s.size() && s[pos] == '}') {
      ++pos;
      return true;
    }
    out->object.reserve(8); // fewer moves of the (large) values as it grows
    for (;;) {
      skipSpace();
      if (pos >= s.size() || s[pos] != '"')
        return fail("expected a string key");
      std::string key;
      size_t keyPos = pos;
      if (!parseString(&key))
        return false;
      if (out->get(key)) {
        pos = keyPos;
        return fail("duplicate key \"" + key + "\"");
      }
      skipSpace();
      if (pos >= s.size() || s[pos] != ':')
        return fail("expected ':' after key");
      ++pos;
      skipSpace();
      out->object.emplace_back(std::move(key), JsonValue());
      if (!parseValue(&out->object.back().second, depth + 1))
        return false;
      skipSpace();
      if (pos < s.size() && s[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < s.size() && s[pos] == '}') {
        ++pos;
        return true;
      }
      return fail("expected ',' or '}' in object");
    }
  }

  bool parseArray(JsonValue *out, int depth) {
    out->kind = JsonValue::Kind::Array;
    ++pos; // '['
    skipSpace();
    if (pos < s.size() && s[pos] == ']') {
      ++pos;
      return true;
    }
    out->array.reserve(4);
    for (;;) {
      skipSpace();
      out->array.emplace_back();
      if (!parseValue(&out->array.back(), depth + 1))
        return false;
      skipSpace();
      if (pos < s.size() && s[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < s.size() && s[pos] == ']') {
        ++pos;
        return true;
      }
      return fail("expected ',' or ']' in array");
    }
  }

  static void appendUtf8(std::string *out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  bool parseHex4(uint32_t *out) {
    if (pos + 4 > s.size())
      return fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s[pos + i];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<uint32_t>(c - 'A' + 10);
      else
        return fail("invalid hex digit in \\u escape");
    }
    pos += 4;
    *out = v;
    return true;
  }

  bool parseString(std::string *out) {
    ++pos; // opening quote
    out->clear();
    for (;;) {
      if (pos >= s.size())
        return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s[pos]);
      if (c == '"') {
        ++pos;
        return true;
      }
      if (c < 0x20)
        return fail("control character in string");
      if (c != '\\') {
        // A run of plain characters at once (manifests are mostly these).
        size_t end = pos + 1;
        while (end < s.size() && s[end] != '"' && s[end] != '\\' &&
               static_cast<unsigned char>(s[end]) >= 0x20)
          ++end;
        out->append(s, pos, end - pos);
        pos = end;
        continue;
      }
      ++pos; // backslash
      if (pos >= s.size())
        return fail("unterminated string");
      char e = s[pos++];
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out->push_back(e);
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'u': {
        uint32_t cp;
        if (!parseHex4(&cp))
          return false;
        if (cp >= 0xd800 && cp < 0xdc00) {
          uint32_t lo;
          if (pos + 2 > s.size() || s[pos] != '\\' || s[pos + 1] != 'u')
            return fail("unpaired surrogate in \\u escape");
          pos += 2;
          if (!parseHex4(&lo))
            return false;
          if (lo < 0xdc00 || lo >= 0xe000)
            return fail("unpaired surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
          return fail("unpaired surrogate in \\u escape");
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        --pos;
        return fail(std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  bool parseNumber(JsonValue *out) {
    size_t start = pos;
    bool integral = true;
    if (s[pos] == '-')
      ++pos;
    if (pos >= s.size() || !(s[pos] >= '0' && s[pos] <= '9'))
      return fail("invalid number");
    if (s[pos] == '0') {
      ++pos;
      if (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
        return fail("leading zeros are not allowed");
    } else {
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
        ++pos;
    }
    if (pos < s.size() && s[pos] == '.') {
      integral = false;
      ++pos;
      if (pos >= s.size() || !(s[pos] >= '0' && s[pos] <= '9'))
        return fail("expected a digit after '.'");
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
        ++pos;
    }
    if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
      integral = false;
      ++pos;
      if (pos < s.size() && (s[pos] == '+' || s[pos] == '-'))
        ++pos;
      if (pos >= s.size() || !(s[pos] >= '0' && s[pos] <= '9'))
        return fail("expected a digit in the exponent");
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
        ++pos;
    }
    std::string token = s.substr(start, pos - start);
    out->kind = JsonValue::Kind::Number;
    out->number = std::strtod(token.c_str(), nullptr);
    if (integral) {
      errno = 0;
      long long v = std::strtoll(token.c_str(), nullptr, 10);
      if (errno == 0) {
        out->isInt = true;
        out->integer = v;
      }
    }
    return true;
  }
};

} // namespace

bool parseJson(const std::string &text, JsonValue *out, std::string *err) {
  Parser p(text);
  JsonValue v;
  if (!p.parseDocument(&v)) {
    if (err)
      *err = p.error;
    return false;
  }
  *out = std::move(v);
  return true;
}

namespace {

void writeString(const std::string &s, std::string *out) {
  *out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      *out += "\\\"";
      break;
    case '\\':
      *out += "\\\\";
      break;
    case '\n':
      *out += "\\n";
      break;
    case '\t':
      *out += "\\t";
      break;
    case '\r':
      *out += "\\r";
      break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        *out += buf;
      } else {
        *out += static_cast<char>(c);
      }
    }
  }
  *out += '"';
}

void writeNumber(const JsonValue &v, std::string *out) {
  if (v.isInt) {
    *out += std::to_string(v.integer);
    return;
  }
  if (!std::isfinite(v.number)) { // not representable in JSON
    *out += "null";
    return;
  }
  // The shortest of %.15g / %.17g that reads back exactly.
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.15g", v.number);
  if (std::strtod(buf, nullptr) != v.number)
    std::snprintf(buf, sizeof(buf), "%.17g", v.number);
  std::string s = buf;
  // Keep it a non-integer token so that it parses back as a fraction.
  if (s.find_first_of(".eEn") == std::string::npos)
    s += ".0";
  *out += s;
}

void writeValue(const JsonValue &v, int depth, std::string *out) {
  auto newline = [&](int d) {
    *out += '\n';
    out->append(static_cast<size_t>(2 * d), ' ');
  };
  switch (v.kind) {
  case JsonValue::Kind::Null:
    *out += "null";
    return;
  case JsonValue::Kind::Bool:
    *out += v.boolean ? "true" : "false";
    return;
  case JsonValue::Kind::Number:
    writeNumber(v, out);
    return;
  case JsonValue::Kind::String:
    writeString(v.string, out);
    return;
  case JsonValue::Kind::Array:
    if (v.array.empty()) {
      *out += "[]";
      return;
    }
    *out += '[';
    for (size_t i = 0; i < v.array.size(); ++i) {
      if (i)
        *out += ',';
      newline(depth + 1);
      writeValue(v.array[i], depth + 1, out);
    }
    newline(depth);
    *out += ']';
    return;
  case JsonValue::Kind::Object:
    if (v.object.empty()) {
      *out += "{}";
      return;
    }
    *out += '{';
    for (size_t i = 0; i < v.object.size(); ++i) {
      if (i)
        *out += ',';
      newline(depth + 1);
      writeString(v.object[i].first, out);
      *out += ": ";
      writeValue(v.object[i].second, depth + 1, out);
    }
    newline(depth);
    *out += '}';
    return;
  }
}

} // namespace

std::string writeJson(const JsonValue &v) {
  std::string out;
  writeValue(v, 0, &out);
  out += '\n';
  return out;
}

} // namespace flashmlir::rt
