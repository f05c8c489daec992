#include "common/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

namespace gr1 {
namespace {

using json = nlohmann::json;

// The reference implementation's limit; a larger header is certainly corrupt.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// numel * elem_size, or false on overflow / negative dims.
bool byte_count(const std::vector<int64_t>& shape, size_t elem, uint64_t* out) {
  uint64_t n = elem;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) return false;
    n *= static_cast<uint64_t>(d);
  }
  *out = n;
  return true;
}

}  // namespace

size_t safetensors_dtype_size(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2")
    return 1;
  return 0;
}

Result<std::string> serialize_safetensors(const SafeTensorsFile& file) {
  json header = json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& t : file.tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      return Result<std::string>::Error("safetensors: invalid tensor name '" + t.name + "'");
    if (!names.insert(t.name).second)
      return Result<std::string>::Error("safetensors: duplicate tensor name " + t.name);
    const size_t elem = safetensors_dtype_size(t.dtype);
    if (elem == 0) return Result<std::string>::Error("safetensors: " + t.name + ": unknown dtype " + t.dtype);
    uint64_t n = 0;
    if (!byte_count(t.shape, elem, &n) || n != t.data.size())
      return Result<std::string>::Error("safetensors: " + t.name + ": " + std::to_string(t.data.size()) +
                                        " data bytes do not match " + t.dtype + shape_str(t.shape));
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h;
  try {
    h = header.dump();  // throws on invalid UTF-8 in names or metadata
  } catch (const json::exception& e) {
    return Result<std::string>::Error(std::string("safetensors: cannot encode header: ") + e.what());
  }
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + h.size() + offset);
  const uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((hl >> (8 * i)) & 0xff));
  out += h;
  // Data in the order of the tensors (the offsets above).
  for (const auto& t : file.tensors) out += t.data;
  return out;
}

Result<SafeTensorsFile> parse_safetensors(std::string_view bytes, const std::string& what) {
  using R = Result<SafeTensorsFile>;
  auto fail = [&](const std::string& m) { return R::Error(what + ": " + m); };
  if (bytes.size() < 8)
    return fail("file is " + std::to_string(bytes.size()) + " bytes, shorter than the 8-byte header length");
  uint64_t hl = 0;
  for (int i = 0; i < 8; ++i) hl |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (hl < 2 || hl > kMaxHeaderBytes || hl > bytes.size() - 8)
    return fail("header length " + std::to_string(hl) + " is not valid for a file of " +
                std::to_string(bytes.size()) + " bytes");
  const std::string_view htext = bytes.substr(8, hl);
  const std::string_view data = bytes.substr(8 + hl);

  json header = json::parse(htext.begin(), htext.end(), nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return fail("header is not valid JSON");
  if (!header.is_object()) return fail("header is not a JSON object");

  SafeTensorsFile file;
  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Span> spans;
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& key = it.key();
      const json& v = it.value();
      if (key == "__metadata__") {
        if (!v.is_object()) return fail("__metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string()) return fail("__metadata__." + m.key() + " is not a string");
          file.metadata[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      if (!v.is_object()) return fail("entry " + key + " is not an object");
      if (!v.contains("dtype") || !v["dtype"].is_string()) return fail(key + ": missing or non-string dtype");
      if (!v.contains("shape") || !v["shape"].is_array()) return fail(key + ": missing or non-array shape");
      if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
        return fail(key + ": data_offsets must be an array of two integers");
      SafeTensor t;
      t.name = key;
      t.dtype = v["dtype"].get<std::string>();
      const size_t elem = safetensors_dtype_size(t.dtype);
      if (elem == 0) return fail(key + ": unknown dtype " + t.dtype);
      for (const auto& d : v["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0)
          return fail(key + ": shape entries must be non-negative integers");
        t.shape.push_back(d.get<int64_t>());
      }
      const auto& off = v["data_offsets"];
      if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        return fail(key + ": data_offsets must be non-negative integers");
      const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
      if (b > e || e > data.size())
        return fail(key + ": data_offsets [" + std::to_string(b) + "," + std::to_string(e) +
                    "] out of range of the " + std::to_string(data.size()) + "-byte data section");
      uint64_t n = 0;
      if (!byte_count(t.shape, elem, &n) || n != e - b)
        return fail(key + ": " + std::to_string(e - b) + " bytes do not match " + t.dtype + shape_str(t.shape));
      spans.push_back(Span{b, e, file.tensors.size()});
      file.tensors.push_back(std::move(t));
    }
  } catch (const json::exception& e) {
    return fail(std::string("malformed header: ") + e.what());
  }

  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      return fail("tensors " + file.tensors[spans[i - 1].index].name + " and " +
                  file.tensors[spans[i].index].name + " overlap");
  std::vector<SafeTensor> ordered;
  ordered.reserve(spans.size());
  for (const auto& s : spans) {
    SafeTensor& t = file.tensors[s.index];
    t.data.assign(data.data() + s.begin, s.end - s.begin);
    ordered.push_back(std::move(t));
  }
  file.tensors = std::move(ordered);
  return file;
}

Status write_safetensors(const std::string& path, const SafeTensorsFile& file) {
  auto bytes = serialize_safetensors(file);
  if (!bytes.ok()) return bytes.status();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::Error("safetensors: cannot open " + tmp + " for writing");
    f.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    f.flush();
    if (!f) return Status::Error("safetensors: write to " + tmp + " failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Status::Error("safetensors: cannot rename " + tmp + " to " + path);
  }
  return Status::Ok();
}

Result<SafeTensorsFile> read_safetensors(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Result<SafeTensorsFile>::Error(path + ": cannot read (" + ec.message() + ")");
  std::ifstream f(path, std::ios::binary);
  if (!f) return Result<SafeTensorsFile>::Error(path + ": cannot open");
  std::string bytes(size, '\0');
  f.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<uint64_t>(f.gcount()) != size) return Result<SafeTensorsFile>::Error(path + ": short read");
  return parse_safetensors(bytes, path);
}

}  // namespace gr1
