// The safetensors file format (torch-free): read, write, validate.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str, ...},
//    "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// (offsets relative to the data section), then the data section. Tensors are
// written end to end in the given order with no holes; the header is padded
// with spaces to a multiple of 8 bytes.
//
// The reader never trusts the file: header length against file size, JSON
// syntax and types, known dtype, byte count == numel * dtype size, offsets
// in range and non-overlapping. Failures come back as errors naming the file
// and what is wrong; nothing is thrown.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace gr1 {

struct SafeTensor {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", ...
  std::vector<int64_t> shape;  // empty = scalar
  std::string data;            // raw little-endian bytes, numel * dtype_size(dtype)
};

struct SafeTensorsFile {
  std::vector<SafeTensor> tensors;              // in data-offset order when read
  std::map<std::string, std::string> metadata;  // "__metadata__"
};

// Bytes per element of a safetensors dtype, 0 if unknown.
size_t safetensors_dtype_size(std::string_view dtype);

// Whole file image (header + data). Errors on duplicate names, unknown
// dtypes, or data sizes that disagree with the shape.
Result<std::string> serialize_safetensors(const SafeTensorsFile& file);

// Parses and validates a whole file image held in memory. `what` names the
// source in error messages.
Result<SafeTensorsFile> parse_safetensors(std::string_view bytes, const std::string& what = "safetensors");

// Writes atomically (temporary file in the same folder, then rename).
Status write_safetensors(const std::string& path, const SafeTensorsFile& file);

// Reads and validates a file.
Result<SafeTensorsFile> read_safetensors(const std::string& path);

}  // namespace gr1
