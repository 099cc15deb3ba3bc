#include "ingest/postgres/error.hpp"

#include "ingest/error.hpp"

namespace ingest::postgres {
namespace {

constexpr std::string_view digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

int pack(std::string_view state) noexcept {
  int value = 0;
  for (char c : state) value = value * 36 + static_cast<int>(digits.find(c));
  return value;
}

std::string unpack(int value) {
  std::string state(5, '0');
  for (int i = 4; i >= 0; --i) {
    state[static_cast<std::size_t>(i)] = digits[static_cast<std::size_t>(value % 36)];
    value /= 36;
  }
  return state;
}

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "postgres"; }
  std::string message(int value) const override { return "SQLSTATE " + unpack(value); }
};

bool in_class(const std::string& state, std::string_view cls) {
  return state.compare(0, cls.size(), cls) == 0;
}

}  // namespace

const std::error_category& postgres_category() noexcept {
  static const category instance;
  return instance;
}

std::error_code make_error_code(std::string_view state) noexcept {
  const bool valid = state.size() == 5 && state.find_first_not_of(digits) == std::string_view::npos;
  return {pack(valid ? state : "XX000"), postgres_category()};
}

std::string sqlstate(const std::error_code& ec) {
  if (ec.category() != postgres_category()) return {};
  return unpack(ec.value());
}

bool is_connection_lost(const std::error_code& ec) noexcept {
  if (ec.category() != postgres_category()) return false;
  const auto s = unpack(ec.value());
  return in_class(s, "08") || s == "57P01" || s == "57P02" || s == "57P03";
}

bool is_transient(const std::error_code& ec) noexcept {
  if (ec.category() != postgres_category()) return false;
  const auto s = unpack(ec.value());
  return is_connection_lost(ec) || in_class(s, "40") || in_class(s, "53") || s == "57014" || s == "55P03";
}

namespace {

// The SQLSTATE of a PostgreSQL error held by `e`, or "".
std::string state_of(std::exception_ptr e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const ingest::error& err) {
    return sqlstate(err.code());
  } catch (...) {
  }
  return {};
}

}  // namespace

std::string failure_reason(std::exception_ptr error) {
  const auto s = state_of(error);
  if (in_class(s, "23")) return "constraint_violation";
  if (in_class(s, "22")) return "invalid_data";
  return ingest::failure_reason(error);
}

failure_kind classify(std::exception_ptr error) noexcept {
  try {
    const auto s = state_of(error);
    if (in_class(s, "23") || in_class(s, "22")) return failure_kind::permanent;
    if (!s.empty()) return failure_kind::transient;
  } catch (...) {
    return failure_kind::transient;
  }
  return default_classifier(error);
}

}  // namespace ingest::postgres
