#include "ingest/log.hpp"

#include <mutex>
#include <string>

#include "ingest/envelope.hpp"
#include "ingest/error.hpp"

namespace ingest {

namespace {

std::string_view level_name(log_level l) noexcept {
  switch (l) {
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warning:
      return "warning";
    case log_level::error:
      return "error";
  }
  return "info";
}

// JSON string escaping: quotes, backslashes and control characters; other bytes as
// they are (keys are printable ASCII; error texts are UTF-8).
void append_json(std::string& out, std::string_view text) {
  out.push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(hex[(c >> 4) & 0xF]);
          out.push_back(hex[c & 0xF]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

class json_lines final : public logger {
 public:
  json_lines(std::FILE* out, log_level min) : out_(out), min_(min) {}

  bool enabled(log_level level) const noexcept override { return level >= min_; }

  void write(const log_event& e) noexcept override {
    if (!enabled(e.level)) return;
    try {
      std::string line = "{\"ts\":";
      append_json(line, format_time(clock::now()));
      line += ",\"level\":";
      append_json(line, level_name(e.level));
      line += ",\"component\":";
      append_json(line, e.component);
      line += ",\"event\":";
      append_json(line, e.event);
      if (!e.receipt_id.empty()) {
        line += ",\"receipt_id\":";
        append_json(line, e.receipt_id);
      }
      if (!e.idempotency_key.empty()) {
        line += ",\"key\":";
        append_json(line, e.idempotency_key);
      }
      if (!e.detail.empty()) {
        line += ",\"detail\":";
        append_json(line, e.detail);
      }
      if (e.attempts > 0) line += ",\"attempts\":" + std::to_string(e.attempts);
      line += "}\n";
      std::lock_guard lock(mutex_);
      std::fwrite(line.data(), 1, line.size(), out_);
      std::fflush(out_);
    } catch (...) {  // out of memory: the event is dropped, never the caller
    }
  }

 private:
  std::FILE* out_;
  log_level min_;
  std::mutex mutex_;
};

}  // namespace

std::shared_ptr<logger> json_lines_logger(std::FILE* out, log_level min_level) {
  return std::make_shared<json_lines>(out, min_level);
}

log_level parse_log_level(std::string_view text) {
  if (text == "debug") return log_level::debug;
  if (text == "info") return log_level::info;
  if (text == "warning" || text == "warn") return log_level::warning;
  if (text == "error") return log_level::error;
  throw error(errc::invalid_config, "log level must be debug, info, warning or error, not '" + std::string(text) + "'");
}

}  // namespace ingest
