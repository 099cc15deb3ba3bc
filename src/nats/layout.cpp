// The layout of a queue's streams: a key's partition depends on the number of
// partitions, so streams laid out for another number (or without partitions) would
// send retries where their originals are not. Such a layout is refused at start, and
// not changed automatically (docs/sizing.md says how to change it).

#include <algorithm>
#include <cctype>
#include <set>

#include "engine.hpp"

namespace ingest::nats {

using namespace detail;

namespace {

using stream_names_handle = handle<jsStreamNamesList, jsStreamNamesList_Destroy>;

[[noreturn]] void refuse(const std::string& what) {
  throw error(errc::invalid_config, what + "; the layout is not changed automatically (docs/sizing.md)");
}

// The partition index of `name` when it is named as a partition of `base` would be
// (`base-0` to `base-63`): a stream such as `base-2024` is someone else's.
std::optional<int> index_of(const std::string& name, const std::string& base) {
  if (name.size() <= base.size() + 1 || name.compare(0, base.size(), base) != 0 || name[base.size()] != '-')
    return std::nullopt;
  const auto digits = name.substr(base.size() + 1);
  if (digits.size() > 2 || (digits.size() == 2 && digits[0] == '0') ||
      !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::nullopt;
  const int i = std::stoi(digits);
  if (i >= queue_options::max_partitions) return std::nullopt;
  return i;
}

// A stream's description as an error message shows it.
std::string shown(const std::optional<std::string>& d) {
  return !d ? "description not readable" : d->empty() ? "no description" : *d;
}

// Whether a stream named as a partition was made as one: every partition's stream
// carries the description; a stream whose description cannot be read is taken to be
// one (refusing is the safe side).
bool made_as_partition(const std::optional<std::string>& d) {
  return !d || d->rfind("ingest queue partition ", 0) == 0;
}

}  // namespace

std::string detail::partition_description(int i, int n) {
  return "ingest queue partition " + std::to_string(i) + " of " + std::to_string(n);
}

// The description of stream `name`; nothing when there is no such stream or when it
// cannot be read (an account allowed less than stream info: the layout cannot be told).
std::optional<std::string> queue::engine::stream_description(const std::string& name) {
  jsStreamInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const auto s = js_GetStreamInfo(&raw, js.get(), name.c_str(), nullptr, &code);
  stream_info_handle info(raw);
  if (s != NATS_OK || !info || !info->Config) return std::nullopt;
  return std::string(info->Config->Description ? info->Config->Description : "");
}

// Every stream's name, or nothing when the list cannot be read.
std::optional<std::vector<std::string>> queue::engine::stream_names() {
  jsStreamNamesList* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const auto s = js_StreamNames(&raw, js.get(), nullptr, &code);
  stream_names_handle list(raw);
  if (s == NATS_NOT_FOUND) return std::vector<std::string>{};
  if (s != NATS_OK || !list) return std::nullopt;
  std::vector<std::string> out;
  for (int i = 0; i < list->Count; ++i) out.emplace_back(list->List[i]);
  return out;
}

// Which of `base` and `base-<index>` exist: from the list of streams, or when that
// cannot be read, by asking for `base` and `base-0` up to `base-<probe_to>`.
queue::engine::layout queue::engine::read_layout(const std::string& base, int probe_to) {
  layout found;
  if (auto names = stream_names()) {
    for (const auto& n : *names) {
      if (n == base)
        found.unpartitioned = true;
      else if (auto i = index_of(n, base))
        found.partitions.insert(*i);
    }
    return found;
  }
  found.unpartitioned = stream_description(base).has_value();
  for (int j = 0; j <= probe_to; ++j)
    if (stream_description(base + "-" + std::to_string(j))) found.partitions.insert(j);
  return found;
}

// Called before anything is created, and again once the queue's stream exists, for a
// process started at the same time with another layout. Partition 0 checks the whole
// layout for the others.
void queue::engine::check_layout() {
  if (options.partition < 0) {
    for (int j : read_layout(options.stream, 0).partitions) {
      const auto name = options.stream + "-" + std::to_string(j);
      const auto d = stream_description(name);
      if (made_as_partition(d))
        refuse("stream " + name + " exists (" + shown(d) + "): this queue was opened with partitions");
    }
    return;
  }
  if (options.partition > 0) return;
  const auto base = options.stream.substr(0, options.stream.rfind('-'));
  const auto n = options.partitions;
  const auto found = read_layout(base, n);
  if (found.unpartitioned) refuse("stream " + base + " exists: this queue was opened without partitions");
  for (int j : found.partitions) {
    const auto name = base + "-" + std::to_string(j);
    const auto d = stream_description(name);
    // A stream this layout will use must be its partition; one past it must not be
    // another layout's.
    if (j < n ? d && *d != partition_description(j, n) : made_as_partition(d))
      refuse("stream " + name + " exists (" + shown(d) + ") where " + std::to_string(n) + " partitions are asked for");
  }
}

}  // namespace ingest::nats
