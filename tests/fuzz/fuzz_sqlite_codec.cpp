// The SQLite queue's header codec (the BLOB column of application headers) and the
// RFC 3339 time text every backend and the exam servers read.

#include "fuzz_support.hpp"
#include "ingest/error.hpp"
#include "sqlite/header_codec.hpp"

using namespace ingest;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::reader in(data, size);
  switch (in.byte() % 3) {
    case 0: {  // a stored block, possibly damaged: decoded whole or refused
      const auto bytes = in.rest();
      header_list h;
      try {
        h = sqlite::detail::decode_headers(bytes);
      } catch (const ingest::error& e) {
        FUZZ_CHECK(e.code() == errc::storage_error);
        return 0;
      }
      FUZZ_CHECK(sqlite::detail::encode_headers(h) == bytes);
      break;
    }
    case 1: {  // any headers survive the round trip
      header_list h;
      while (!in.empty()) {
        auto name = in.field();
        auto value = in.field();
        h.emplace_back(std::move(name), std::move(value));
      }
      FUZZ_CHECK(sqlite::detail::decode_headers(sqlite::detail::encode_headers(h)) == h);
      break;
    }
    default: {  // time text: parsed or refused; what is parsed prints back to the same millisecond
      const auto text = in.rest();
      time_point t;
      try {
        t = parse_time(text);
      } catch (const ingest::error& e) {
        FUZZ_CHECK(e.code() == errc::invalid_config);
        return 0;
      }
      const auto printed = format_time(t);
      const auto again = parse_time(printed);
      FUZZ_CHECK(format_time(again) == printed);
      FUZZ_CHECK(std::chrono::abs(again - t) < std::chrono::milliseconds(1));
      break;
    }
  }
  return 0;
}
