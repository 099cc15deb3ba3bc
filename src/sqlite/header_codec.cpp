#include "header_codec.hpp"

#include <cstdint>

#include "ingest/error.hpp"

namespace ingest::sqlite::detail {
namespace {

void put(std::string& out, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  out.append(s);
}

std::string_view take(std::string_view& in) {
  if (in.size() < 4) throw error(errc::storage_error, "corrupt header block: truncated length");
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(4);
  if (n > in.size()) throw error(errc::storage_error, "corrupt header block: length past the end");
  auto s = in.substr(0, n);
  in.remove_prefix(n);
  return s;
}

}  // namespace

std::string encode_headers(const header_list& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    put(out, name);
    put(out, value);
  }
  return out;
}

header_list decode_headers(std::string_view bytes) {
  header_list out;
  while (!bytes.empty()) {
    auto name = take(bytes);
    auto value = take(bytes);
    out.emplace_back(std::string(name), std::string(value));
  }
  return out;
}

}  // namespace ingest::sqlite::detail
