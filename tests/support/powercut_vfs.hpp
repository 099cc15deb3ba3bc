#pragma once
// A stacked SQLite VFS that simulates a power cut, for the durability tests.
//
// It passes every call through to the default VFS ("unix"), so files on disk always
// hold what was written, like the page cache. Beside that it keeps, per file, the image
// a disk would hold after a power cut: what was written up to the file's last xSync.
// A write or truncate is pending until an xSync of that file (any handle) makes it
// durable. `cut()` freezes every image at that instant: from then on nothing becomes
// durable. `restore()` rewrites each file as its frozen image (and removes the shared
// memory files, which a power cut does not keep), as if the machine rebooted.
//
// Model limits: a created or deleted file is taken to exist or be gone at once (no
// directory fsync is modelled), and a sync makes the whole file durable (fsync, not
// fdatasync of a range), which is what SQLite's unix VFS asks of Linux.

#include <cstdint>
#include <string>

namespace ingest::test::powercut {

/// Registers the VFS as SQLite's default (once per process) and starts tracking
/// files under `dir` from now on; files elsewhere pass through untracked.
void install(const std::string& dir);

/// Cuts the power now; from here no write becomes durable. Thread-safe.
void cut();

/// Cuts the power when the `n`th tracked write or sync from now starts (1 = the next
/// one), so that the cut can fall in the middle of a commit. 0 disarms.
void cut_at_operation(std::uint64_t n);

/// Whether the power has been cut.
bool is_cut();

/// From now until the next `install`, a sync of a file whose name ends with `suffix`
/// makes nothing durable: as if the program did not sync it (`-wal`: a WAL commit
/// with `synchronous=NORMAL`). A negative control for the tests.
void ignore_syncs_of(const std::string& suffix);

/// Rewrites every tracked file as its durable image, removes `-shm` files, and stops
/// tracking (call `install` again for the next run). Call after every connection to
/// the files is closed.
void restore();

/// Counts since `install`: xSync calls on tracked files, and how many of them came
/// after the cut (and so made nothing durable).
struct counters {
  std::uint64_t syncs = 0;
  std::uint64_t syncs_after_cut = 0;
  std::uint64_t writes = 0;
};
counters stats();

}  // namespace ingest::test::powercut
