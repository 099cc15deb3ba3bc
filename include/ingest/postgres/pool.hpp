#pragma once
/// @file
/// A fixed set of PostgreSQL connections shared by threads: each thread leases one,
/// uses it alone, and gives it back.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ingest/postgres/connection.hpp"

namespace ingest::postgres {

/// How a `connection_pool` sizes itself and waits.
struct pool_options {
  std::size_t size = 4;  ///< connections at most (each a server backend)
  /// How long `acquire` waits for a free connection before it gives up.
  std::chrono::milliseconds acquire_timeout{std::chrono::seconds(5)};
  connection_options connection{};  ///< how each connection connects
};

/// Up to `size` connections to one database, opened when first needed and opened again
/// when found broken. Thread-safe; a leased connection is used by its holder alone.
///
/// @code
/// ingest::postgres::connection_pool pool("postgresql://app@127.0.0.1/lms", {.size = 8});
/// auto db = pool.acquire();                 // waits for a free connection
/// db->exec("SELECT 1");
/// @endcode                                  // given back when `db` goes out of scope
class connection_pool {
 public:
  /// A connection on loan: given back to the pool on destruction (rolled back first if
  /// its holder left a transaction open). Move-only.
  class lease {
   public:
    /// Takes over the loan; the source gives nothing back.
    lease(lease&& other) noexcept : pool_(other.pool_), slot_(other.slot_) { other.pool_ = nullptr; }
    lease& operator=(lease&&) = delete;
    ~lease();
    /// The connection.
    connection& operator*() const noexcept { return pool_->conn(slot_); }
    /// The connection.
    connection* operator->() const noexcept { return &pool_->conn(slot_); }
    /// Which of the pool's connections this is (0 to size-1): stable per connection, for
    /// state kept beside it (prepared statements, a store bound to it).
    std::size_t slot() const noexcept { return slot_; }

   private:
    friend class connection_pool;
    lease(connection_pool* pool, std::size_t slot) noexcept : pool_(pool), slot_(slot) {}
    connection_pool* pool_;
    std::size_t slot_;
  };

  /// A pool for `conninfo` (see `connection`); connects nothing yet. Throws
  /// `ingest::error(errc::invalid_config)` for a size of 0.
  explicit connection_pool(std::string conninfo, pool_options options = {});
  ~connection_pool();
  connection_pool(const connection_pool&) = delete;
  connection_pool& operator=(const connection_pool&) = delete;

  /// A free connection, opened or reopened when needed. Throws `ingest::error` with
  /// `errc::backpressure` when none is free within `acquire_timeout`, or the
  /// connection's error when it cannot connect.
  lease acquire();
  /// The most connections the pool opens.
  std::size_t size() const noexcept { return slots_.size(); }
  /// Connections leased right now.
  std::size_t in_use() const;

 private:
  connection& conn(std::size_t slot) const noexcept { return *slots_[slot]; }
  void give_back(std::size_t slot) noexcept;

  std::string conninfo_;
  pool_options options_;
  std::vector<std::unique_ptr<connection>> slots_;
  std::vector<std::size_t> free_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
};

}  // namespace ingest::postgres
