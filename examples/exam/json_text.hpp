#pragma once
// JSON text as the exam system reads and writes it, where Boost.JSON's defaults do not
// suit people: it keeps the last of repeated keys silently (a request body that names
// a question twice is refused instead), and it writes 20.5 as 2.05E1.

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace exam {

// `v` as JSON text with every number written as a person reads it: 20, 20.5, 0.125
// (the shortest text that reads back to the same double; an exponent only past 1e21
// or below 1e-6).
std::string to_plain_json(const boost::json::value& v);

// The `receipt_id` of a receipt body: any non-empty string (another implementation of
// the contract need not use UUIDs); nullopt when there is none. The plain case is read
// without a JSON parser (a load generator's hot path); an escaped one is parsed.
std::optional<std::string> receipt_id_in(const std::string& body);

// The first key that appears twice in the same object of `json` (at any depth), or
// nullopt when there is none or the text is not JSON (the caller's parse reports that).
std::optional<std::string> repeated_json_key(std::string_view json, unsigned max_depth = 8);

}  // namespace exam
